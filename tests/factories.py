"""Factories for the rows of every app. They write rows directly: use them to arrange, and services to act.

- accounts: UserFactory (a person), ServiceAccountFactory, TeamFactory, TokenFactory (its `.token` attribute
  is the bearer token), and grant() for a role on an asset;
- registry: AssetFactory, VersionFactory, EdgeFactory;
- approvals: PolicyFactory, PromotionFactory.
"""

import datetime as dt
import hashlib
import secrets

import factory
from django.contrib.auth.models import Group
from django.utils import timezone
from guardian.shortcuts import assign_perm

from accounts.models import ApiToken, Scope, User
from approvals.models import Policy, PromotionRequest
from registry.models import Asset, AssetKind, AssetVersion, LineageEdge, Relation, Stage


def digest_for(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# accounts -----------------------------------------------------------------------------------------


class UserFactory(factory.django.DjangoModelFactory):
    """A person, made with create_user: without `password` the account has no usable password."""

    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"person-{n}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return model_class.objects.create_user(*args, **kwargs)


class ServiceAccountFactory(UserFactory):
    """An account for CI: never signs in with a password, never reviews."""

    username = factory.Sequence(lambda n: f"ci-{n}")
    is_service_account = True


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Group
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"team-{n}")


class TokenFactory(factory.django.DjangoModelFactory):
    """An API token row; the bearer token itself is on the returned object as `.token` (never stored)."""

    class Meta:
        model = ApiToken

    account = factory.SubFactory(ServiceAccountFactory)
    name = factory.Sequence(lambda n: f"token-{n}")
    lookup = factory.LazyFunction(lambda: secrets.token_hex(6))
    secret = factory.LazyFunction(lambda: secrets.token_urlsafe(30).replace("_", "x").replace("-", "y"))
    hashed = factory.LazyAttribute(lambda o: ApiToken.hash(f"{ApiToken.PREFIX}_{o.lookup}_{o.secret}"))
    last4 = factory.LazyAttribute(lambda o: o.secret[-4:])
    scopes = factory.LazyFunction(lambda: [Scope.READ])
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=30))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        token = f"{ApiToken.PREFIX}_{kwargs['lookup']}_{kwargs.pop('secret')}"
        record = super()._create(model_class, *args, **kwargs)
        record.token = token
        return record


def grant(principal, asset, *roles: str) -> None:
    """Give principal (a person, service account or team) each role ("view", "manage", …) on asset."""
    for role in roles:
        assign_perm(f"registry.{role}_asset", principal, asset)


# registry -----------------------------------------------------------------------------------------


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


# approvals ----------------------------------------------------------------------------------------


class PolicyFactory(factory.django.DjangoModelFactory):
    """A policy for production; for one asset when asset is given (of its kind), else for every asset."""

    class Meta:
        model = Policy

    asset = None
    kind = factory.LazyAttribute(lambda o: o.asset.kind if o.asset else "")
    stage = factory.LazyFunction(lambda: Stage.objects.get(name="production"))
    required_approvals = 1


class PromotionFactory(factory.django.DjangoModelFactory):
    """A promotion request row (pending unless told), expiring in a day."""

    class Meta:
        model = PromotionRequest

    version = factory.SubFactory(VersionFactory)
    asset = factory.SelfAttribute("version.asset")
    stage = factory.LazyFunction(lambda: Stage.objects.get(name="production"))
    requested_by = factory.SubFactory(UserFactory)
    justification = "better auc"
    expires_at = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=1))
    # What promotion_request records when no policy adds anything: one approval, no gates.
    policy_snapshot = factory.LazyFunction(
        lambda: {
            "policy_id": None,
            "required_approvals": 1,
            "reviewer_teams": [],
            "allow_author_approval": False,
            "gates": [],
            "apply_on_approval": True,
        }
    )
