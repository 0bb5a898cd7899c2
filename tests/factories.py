"""Factories for registry rows. They write rows directly: use them to arrange, and services to act."""

import hashlib

import factory

from registry.models import Asset, AssetKind, AssetVersion, LineageEdge, Relation


def digest_for(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset

    kind = AssetKind.MODEL
    name = factory.Sequence(lambda n: f"asset-{n}")
    description = "An asset."


class VersionFactory(factory.django.DjangoModelFactory):
    """A version numbered after its asset's latest, keeping the asset's counter in step."""

    class Meta:
        model = AssetVersion

    asset = factory.SubFactory(AssetFactory)
    digest = factory.Sequence(lambda n: digest_for(f"version-{n}"))
    metrics = factory.LazyFunction(lambda: {"auc": 0.9})

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        asset = kwargs["asset"]
        if "number" not in kwargs:
            asset.latest_version_number += 1
            Asset.objects.filter(pk=asset.pk).update(latest_version_number=asset.latest_version_number)
            kwargs["number"] = asset.latest_version_number
        return super()._create(model_class, *args, **kwargs)


class EdgeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LineageEdge

    parent = factory.SubFactory(VersionFactory)
    child = factory.SubFactory(VersionFactory)
    relation = Relation.DERIVED_FROM
