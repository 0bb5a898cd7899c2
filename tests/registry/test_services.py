"""Service tests: each rule of the registry, and the audit event each change writes."""

import pytest

from audit.models import Action, AuditEvent
from core.exceptions import Conflict, InvalidInput
from core.source import Source
from registry import content, services
from registry.models import Asset, AssetKind, AssetVersion, LineageEdge, Relation, Stage, StageHistory
from registry.services import VersionRef
from tests.factories import AssetFactory, EdgeFactory, VersionFactory, digest_for

pytestmark = pytest.mark.django_db
SRC = Source.cli()


def register(admin, asset, **data):
    data.setdefault("digest", digest_for(f"{asset.name}-{asset.latest_version_number}"))
    version = services.version_register(actor=admin, source=SRC, asset=asset, data=data)
    asset.refresh_from_db()
    return version


def actions():
    return list(AuditEvent.objects.values_list("action", flat=True))


def test_asset_create_records_event(admin):
    asset = services.asset_create(actor=admin, source=SRC, kind=AssetKind.MODEL, name="fraud", tags=["x"])
    event = AuditEvent.objects.get()
    assert event.action == Action.ASSET_CREATED
    assert event.asset_id == asset.pk
    assert event.actor_repr == "root"
    assert event.changes["after"]["tags"] == ["x"]


def test_asset_create_refuses_duplicate_and_bad_name(admin):
    services.asset_create(actor=admin, source=SRC, kind=AssetKind.MODEL, name="fraud")
    with pytest.raises(Conflict) as excinfo:
        services.asset_create(actor=admin, source=SRC, kind=AssetKind.MODEL, name="fraud")
    assert excinfo.value.type == "duplicate-name"
    # The same name is free in another kind.
    services.asset_create(actor=admin, source=SRC, kind=AssetKind.PROMPT, name="fraud")
    for bad in ["Fraud", "-x", "a b", "x" * 101, ""]:
        with pytest.raises(InvalidInput):
            services.asset_create(actor=admin, source=SRC, kind=AssetKind.MODEL, name=bad)
    assert Asset.objects.count() == 2
    assert AuditEvent.objects.count() == 2


def test_version_numbers_count_up_per_asset(admin):
    first, second = AssetFactory(), AssetFactory()
    assert [register(admin, first).number for _ in range(3)] == [1, 2, 3]
    assert register(admin, second).number == 1
    assert actions() == [Action.VERSION_CREATED] * 4


def test_failed_registration_leaves_no_gap(admin):
    asset = AssetFactory()
    register(admin, asset)
    with pytest.raises(InvalidInput):
        register(admin, asset, digest="md5:abc")
    assert register(admin, asset).number == 2


@pytest.mark.parametrize(
    "digest",
    ["sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha1:" + "a" * 64, "a" * 64, ""],
)
def test_digest_must_be_sha256_hex(admin, digest):
    with pytest.raises(InvalidInput) as excinfo:
        register(admin, AssetFactory(), digest=digest)
    assert excinfo.value.errors[0].field == "digest"
    assert not AssetVersion.objects.exists()


def test_prompt_digest_and_variables_are_computed(admin):
    prompt = AssetFactory(kind=AssetKind.PROMPT)
    template = "Hello {{ name }}, about {{topic}}: {{name}}"
    version = services.version_register(
        actor=admin, source=SRC, asset=prompt, data={"template": template, "model_config": {"t": 0.2}}
    )
    assert version.variables == ["name", "topic"]
    assert version.digest == content.prompt_digest(template=template, model_config={"t": 0.2})
    assert content.DIGEST_RE.match(version.digest)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"template": "Hi {{ 1x }}"}, "template"),
        ({"template": "Hi {{name}"}, "template"),
        ({"template": "Hi }} there"}, "template"),
        ({"template": "   "}, "template"),
        ({"template": "Hi {{a}}", "variables": ["b"]}, "variables"),
        ({"template": "Hi {{a}}", "digest": digest_for("other")}, "digest"),
        ({"template": "Hi {{a}}", "metrics": {"auc": 1}}, "metrics"),
    ],
)
def test_prompt_content_is_checked(admin, data, field):
    prompt = AssetFactory(kind=AssetKind.PROMPT)
    with pytest.raises(InvalidInput) as excinfo:
        services.version_register(actor=admin, source=SRC, asset=prompt, data=data)
    assert excinfo.value.errors[0].field == field


def test_dataset_needs_uri(admin):
    with pytest.raises(InvalidInput) as excinfo:
        register(admin, AssetFactory(kind=AssetKind.DATASET))
    assert excinfo.value.errors[0].field == "uri"


@pytest.mark.parametrize("metrics", [{"auc": "high"}, {"auc": float("nan")}, {"auc": True}, {"a b": 1}])
def test_metrics_must_be_finite_numbers(admin, metrics):
    with pytest.raises(InvalidInput):
        register(admin, AssetFactory(), metrics=metrics)


def test_version_content_is_immutable(admin):
    version = register(admin, AssetFactory(), description="old")
    with pytest.raises(InvalidInput) as excinfo:
        services.version_update(actor=admin, source=SRC, version=version, metrics={"auc": 1.0})
    assert excinfo.value.errors[0].field == "metrics"
    services.version_update(actor=admin, source=SRC, version=version, description="new", tags=["a"])
    event = AuditEvent.objects.filter(action=Action.VERSION_UPDATED).get()
    assert event.changes == {
        "before": {"description": "old", "tags": []},
        "after": {"description": "new", "tags": ["a"]},
    }


def test_update_without_change_writes_no_event(admin):
    version = register(admin, AssetFactory(), description="same")
    services.version_update(actor=admin, source=SRC, version=version, description="same")
    assert AuditEvent.objects.filter(action=Action.VERSION_UPDATED).count() == 0


def test_registration_with_lineage(admin):
    data_asset = AssetFactory(kind=AssetKind.DATASET, name="transactions")
    dataset = VersionFactory(asset=data_asset)
    model = AssetFactory()
    version = services.version_register(
        actor=admin,
        source=SRC,
        asset=model,
        data={"digest": digest_for("m")},
        lineage=[(Relation.TRAINED_ON, VersionRef("dataset", "transactions", dataset.number))],
    )
    edge = LineageEdge.objects.get()
    assert (edge.parent, edge.child, edge.relation) == (dataset, version, Relation.TRAINED_ON)
    assert AuditEvent.objects.get().changes["after"]["lineage"] == [
        {"relation": "trained_on", "parent": "dataset/transactions@1"}
    ]


def test_registration_with_unknown_lineage_creates_nothing(admin):
    model = AssetFactory()
    with pytest.raises(InvalidInput) as excinfo:
        services.version_register(
            actor=admin,
            source=SRC,
            asset=model,
            data={"digest": digest_for("m")},
            lineage=[(Relation.TRAINED_ON, VersionRef("dataset", "nope", 4))],
        )
    assert excinfo.value.errors[0].field == "lineage[0]"
    assert "dataset/nope version 4" in excinfo.value.errors[0].message
    assert not AssetVersion.objects.exists()
    assert not AuditEvent.objects.exists()
    model.refresh_from_db()
    assert model.latest_version_number == 0


def test_lineage_cycles_are_refused(admin):
    a = VersionFactory()
    b = VersionFactory()
    c = VersionFactory()
    EdgeFactory(parent=a, child=b)
    EdgeFactory(parent=b, child=c)

    def add(child, parent):
        return services.lineage_add(
            actor=admin,
            source=SRC,
            child=child,
            relation=Relation.DERIVED_FROM,
            parent_ref=VersionRef(parent.asset.kind, parent.asset.name, parent.number),
        )

    with pytest.raises(Conflict) as excinfo:
        add(child=a, parent=c)  # c → a would close a → b → c → a
    assert excinfo.value.type == "lineage-cycle"
    with pytest.raises(Conflict):
        add(child=a, parent=a)
    add(child=c, parent=a)  # a shortcut edge is fine: no cycle
    with pytest.raises(Conflict) as excinfo:
        add(child=c, parent=a)
    assert excinfo.value.type == "duplicate-edge"
    assert LineageEdge.objects.count() == 3
    assert actions() == [Action.LINEAGE_ADDED]


def test_evaluation_added(admin):
    version = register(admin, AssetFactory())
    dataset = VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="holdout"))
    evaluation = services.evaluation_add(
        actor=admin,
        source=SRC,
        version=version,
        name="nightly",
        metrics={"auc": 0.95},
        dataset=VersionRef("dataset", "holdout", 1),
    )
    assert evaluation.dataset_version == dataset
    assert actions()[-1] == Action.EVALUATION_ADDED
    with pytest.raises(InvalidInput):
        services.evaluation_add(actor=admin, source=SRC, version=version, name="x", metrics={})


def test_archived_asset_takes_no_changes(admin):
    asset = AssetFactory()
    version = register(admin, asset)
    services.asset_archive(actor=admin, source=SRC, asset=asset, reason="retired")
    with pytest.raises(Conflict) as excinfo:
        register(admin, asset)
    assert excinfo.value.type == "asset-archived"
    with pytest.raises(Conflict):
        services.asset_archive(actor=admin, source=SRC, asset=asset)
    with pytest.raises(Conflict):
        services.stage_set(
            actor=admin, source=SRC, asset=asset, stage=Stage.objects.get(name="staging"), version=version
        )


def test_stage_set_moves_pointer_and_writes_history(admin):
    asset = AssetFactory()
    v1, v2 = register(admin, asset), register(admin, asset)
    staging = Stage.objects.get(name="staging")
    services.stage_set(actor=admin, source=SRC, asset=asset, stage=staging, version=v1)
    pointer = services.stage_set(actor=admin, source=SRC, asset=asset, stage=staging, version=v2, reason="r")
    assert pointer.version == v2
    history = list(StageHistory.objects.order_by("id").values_list("previous_version", "version"))
    assert history == [(None, v1.pk), (v1.pk, v2.pk)]
    event = AuditEvent.objects.filter(action=Action.STAGE_SET).last()
    assert event.changes == {
        "stage": "staging",
        "before": {"version": 1},
        "after": {"version": 2},
        "reason": "r",
        "promotion": None,
    }
    with pytest.raises(Conflict) as excinfo:
        services.stage_set(actor=admin, source=SRC, asset=asset, stage=staging, version=v2)
    assert excinfo.value.type == "already-in-stage"


def test_protected_stage_needs_a_promotion(admin):
    asset = AssetFactory()
    version = register(admin, asset)
    with pytest.raises(Conflict) as excinfo:
        services.stage_set(
            actor=admin, source=SRC, asset=asset, stage=Stage.objects.get(name="production"), version=version
        )
    assert excinfo.value.type == "stage-protected"
    assert not StageHistory.objects.exists()


def test_stage_set_refuses_version_of_another_asset(admin):
    asset = AssetFactory()
    foreign = register(admin, AssetFactory())
    with pytest.raises(InvalidInput):
        services.stage_set(
            actor=admin, source=SRC, asset=asset, stage=Stage.objects.get(name="staging"), version=foreign
        )
