"""Visibility: an asset you may not see is indistinguishable from one that does not exist."""

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm

from registry.models import Asset, AssetGroupObjectPermission, AssetKind, Stage, StagePointer
from registry.permissions import restrict
from tests.factories import AssetFactory, EdgeFactory, UserFactory, VersionFactory
from tests.helpers import api_client

pytestmark = pytest.mark.django_db

ROUTES = [
    "/api/v1/models/{name}",
    "/api/v1/models/{name}/versions",
    "/api/v1/models/{name}/versions/1",
    "/api/v1/models/{name}/versions/1/evaluations",
    "/api/v1/models/{name}/versions/1/lineage",
    "/api/v1/models/{name}/stages",
    "/api/v1/models/{name}/stages/staging",
    "/api/v1/models/{name}/permissions",
]


@pytest.fixture
def bob():
    return UserFactory(username="bob")


@pytest.mark.parametrize("route", ROUTES)
def test_invisible_is_the_same_404_as_missing(bob, route):
    hidden = AssetFactory(name="hidden")
    version = VersionFactory(asset=hidden)
    version.evaluations.create(name="e", metrics={"a": 1})
    StagePointer.objects.create(
        asset=hidden, stage=Stage.objects.get(name="staging"), version=version, updated_at="2026-01-01T00:00Z"
    )
    client = api_client(bob)
    invisible = client.get(route.format(name="hidden"))
    missing = client.get(route.format(name="missing"))
    assert invisible.status_code == missing.status_code == 404
    assert invisible.content == missing.content
    assert invisible["Content-Type"] == missing["Content-Type"]
    # Writes under an invisible asset are 404 too, never 403.
    write = client.post("/api/v1/models/hidden/versions", {"digest": "sha256:" + "a" * 64}, format="json")
    assert write.status_code == 404


def test_lists_exclude_invisible_assets(bob):
    visible = AssetFactory(name="mine")
    AssetFactory(name="theirs")
    team = Group.objects.create(name="team")
    bob.groups.add(team)
    by_team = AssetFactory(name="team-one")
    assign_perm("registry.view_asset", bob, visible)
    assign_perm("registry.review_asset", team, by_team)
    names = [a["name"] for a in api_client(bob).get("/api/v1/models").json()["results"]]
    assert names == ["mine", "team-one"]
    assert restrict(Asset.objects.all(), bob).count() == 2


def test_lineage_leaves_out_edges_to_invisible_assets(bob):
    mine = VersionFactory(asset=AssetFactory(name="mine"))
    secret = VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="secret-data"))
    shared = VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="shared-data"))
    EdgeFactory(parent=secret, child=mine)
    EdgeFactory(parent=shared, child=mine)
    assign_perm("registry.view_asset", bob, mine.asset)
    assign_perm("registry.view_asset", bob, shared.asset)
    edges = api_client(bob).get("/api/v1/models/mine/versions/1/lineage").json()["edges"]
    assert [edge["parent"]["name"] for edge in edges] == ["shared-data"]


def test_lineage_reference_to_an_invisible_version_is_unknown(bob):
    mine = AssetFactory(name="mine")
    assign_perm("registry.contribute_asset", bob, mine)
    VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="secret-data"))
    body = {
        "digest": "sha256:" + "b" * 64,
        "lineage": [{"relation": "trained_on", "kind": "dataset", "name": "secret-data", "version": 1}],
    }
    hidden = api_client(bob).post("/api/v1/models/mine/versions", body, format="json").json()
    body["lineage"][0]["name"] = "no-such-data"
    missing = api_client(bob).post("/api/v1/models/mine/versions", body, format="json").json()
    assert hidden["type"] == missing["type"] == "unknown-version"
    assert hidden["errors"][0]["message"].replace("secret-data", "X") == missing["errors"][0][
        "message"
    ].replace("no-such-data", "X")


def _population(user, visible: int, total: int):
    team = Group.objects.create(name=f"team-{visible}")
    user.groups.add(team)
    assets = Asset.objects.bulk_create(Asset(kind=AssetKind.MODEL, name=f"m-{i:05d}") for i in range(total))
    from django.contrib.auth.models import Permission

    from registry.models import AssetUserObjectPermission

    view = Permission.objects.get(codename="view_asset")
    half = visible // 2
    AssetUserObjectPermission.objects.bulk_create(
        AssetUserObjectPermission(user=user, permission=view, content_object=a) for a in assets[:half]
    )
    AssetGroupObjectPermission.objects.bulk_create(
        AssetGroupObjectPermission(group=team, permission=view, content_object=a)
        for a in assets[half:visible]
    )


@pytest.mark.parametrize(("visible", "total"), [(10, 50), (1000, 5000)])
def test_asset_list_query_count_does_not_grow(bob, django_assert_num_queries, visible, total):
    _population(bob, visible, total)
    client = api_client(bob)
    # One query: the page of assets, filtered by two permission subqueries, with team and creator joined.
    with django_assert_num_queries(1):
        body = client.get("/api/v1/models?page_size=100").json()
    assert len(body["results"]) == min(visible, 100)
    assert restrict(Asset.objects.all(), bob).count() == visible


def test_lineage_does_not_walk_through_hidden_versions(bob):
    """mine ← hidden ← shared: bob sees mine and shared, but not that they are connected through hidden."""
    mine = VersionFactory(asset=AssetFactory(name="mine"))
    hidden = VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="hidden-data"))
    shared = VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="shared-data"))
    EdgeFactory(parent=hidden, child=mine)
    EdgeFactory(parent=shared, child=hidden)
    assign_perm("registry.view_asset", bob, mine.asset)
    assign_perm("registry.view_asset", bob, shared.asset)
    edges = api_client(bob).get("/api/v1/models/mine/versions/1/lineage?depth=5").json()["edges"]
    assert edges == []


def test_evaluation_dataset_hidden_from_those_who_may_not_see_it(bob):
    mine = VersionFactory(asset=AssetFactory(name="mine"))
    secret = VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="secret-data"))
    mine.evaluations.create(name="holdout", metrics={"auc": 0.9}, dataset_version=secret)
    assign_perm("registry.view_asset", bob, mine.asset)
    [evaluation] = api_client(bob).get("/api/v1/models/mine/versions/1/evaluations").json()["results"]
    assert evaluation["dataset"] is None
    assert "secret-data" not in str(evaluation)


def test_compiled_resolve_answers_like_the_orm_for_every_kind_of_user(bob):
    """The stage resolve reuses its compiled SQL: each user, asset and stage still gets its own answer."""
    from registry.selectors import stage_pointer_resolve_for_user

    staging = Stage.objects.get(name="staging")
    mine, theirs = AssetFactory(name="mine"), AssetFactory(name="theirs")
    for asset in (mine, theirs):
        StagePointer.objects.create(
            asset=asset, stage=staging, version=VersionFactory(asset=asset), updated_at="2026-01-01T00:00:00Z"
        )
    team = Group.objects.create(name="t")
    carol = UserFactory(username="carol")
    carol.groups.add(team)
    assign_perm("registry.view_asset", bob, mine)
    assign_perm("registry.view_asset", team, theirs)
    admin = UserFactory(username="root", global_role="admin")
    expected = {
        (bob, "mine"): True,
        (bob, "theirs"): False,
        (carol, "mine"): False,
        (carol, "theirs"): True,
        (admin, "mine"): True,
        (admin, "theirs"): True,
    }
    for _ in range(2):  # the second round runs on the cached SQL
        for (who, name), visible in expected.items():
            row = stage_pointer_resolve_for_user(user=who, kind=AssetKind.MODEL, name=name, stage="staging")
            assert (row is not None) == visible, (who, name)
            if row:
                assert row["version__number"] == 1 and row["stage__name"] == "staging"
                assert row["updated_at"].year == 2026  # converted to a datetime on every database
        assert (
            stage_pointer_resolve_for_user(user=bob, kind=AssetKind.MODEL, name="mine", stage="production")
            is None
        )


def test_restrict_few_answers_as_restrict_for_every_kind_of_user(bob):
    """The per-row form (EXISTS) for lookups by key gives the same rows as the list form (IN)."""
    from django.contrib.auth.models import AnonymousUser

    from registry.permissions import restrict_few

    direct, by_team, hidden = (AssetFactory(name=name) for name in ("direct", "by-team", "hidden"))
    staging = Stage.objects.get(name="staging")
    for asset in (direct, by_team, hidden):
        StagePointer.objects.create(
            asset=asset, stage=staging, version=VersionFactory(asset=asset), updated_at="2026-01-01T00:00:00Z"
        )
    team = Group.objects.create(name="t")
    carol = UserFactory(username="carol")
    carol.groups.add(team)
    bob.groups.add(team)
    assign_perm("registry.view_asset", bob, direct)
    assign_perm("registry.review_asset", team, by_team)
    people = [
        bob,
        carol,
        UserFactory(username="nobody"),
        UserFactory(username="root", global_role="admin"),
        UserFactory(username="audrey", global_role="auditor"),
        AnonymousUser(),
    ]
    for person in people:
        for asset in (direct, by_team, hidden):
            by_key = Asset.objects.filter(kind=asset.kind, name=asset.name)
            assert list(restrict_few(by_key, person)) == list(restrict(by_key, person)), (person, asset)
        pointers = StagePointer.objects.all()
        assert set(restrict_few(pointers, person, field="asset")) == set(
            restrict(pointers, person, field="asset")
        )
    assert [a.name for a in restrict_few(Asset.objects.order_by("name"), bob)] == ["by-team", "direct"]
    assert {p.asset.name for p in restrict_few(StagePointer.objects.all(), carol, field="asset")} == {
        "by-team"
    }
