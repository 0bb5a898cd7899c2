"""Recent activity names only what its reader may see: a model's events do not name a hidden dataset."""

import html

import pytest
from django.test import Client
from guardian.shortcuts import assign_perm

from approvals import selectors
from audit.models import AuditEvent
from core.source import Source
from registry import event_text
from registry import services as registry
from registry.models import AssetKind, Relation
from registry.services import VersionRef
from tests.factories import AssetFactory, UserFactory, VersionFactory, digest_for

pytestmark = pytest.mark.django_db
SRC = Source.cli()
SECRET = "secret-survey"


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def trained(admin):
    """model/fraud@1 (visible to vic) trained on dataset/secret-survey@1 (not visible to vic), with a lineage
    edge added later, an evaluation on the dataset, and an edge from a visible dataset."""
    model = AssetFactory(kind=AssetKind.MODEL, name="fraud")
    secret = AssetFactory(kind=AssetKind.DATASET, name=SECRET)
    public = AssetFactory(kind=AssetKind.DATASET, name="public-sample")
    VersionFactory(asset=secret, uri="s3://bucket/secret")
    VersionFactory(asset=secret, uri="s3://bucket/secret2")
    VersionFactory(asset=public, uri="s3://bucket/public")
    version = registry.version_register(
        actor=admin,
        source=SRC,
        asset=model,
        data={"digest": digest_for("fraud-1")},
        lineage=[
            (Relation.TRAINED_ON, VersionRef("dataset", SECRET, 1)),
            (Relation.EVALUATED_ON, VersionRef("dataset", "public-sample", 1)),
        ],
    )
    registry.lineage_add(
        actor=admin,
        source=SRC,
        child=version,
        parent_ref=VersionRef("dataset", SECRET, 2),
        relation=Relation.TRAINED_ON,
    )
    registry.evaluation_add(
        actor=admin,
        source=SRC,
        version=version,
        name="holdout",
        metrics={"auc": 0.91},
        dataset=VersionRef("dataset", SECRET, 2),
    )
    viewer = UserFactory(username="vic")
    assign_perm("registry.view_asset", viewer, model)
    assign_perm("registry.view_asset", viewer, public)
    return viewer, model, secret


def test_a_viewers_inbox_does_not_name_a_dataset_they_cannot_see(trained):
    viewer, model, _ = trained
    response = browser(viewer).get("/")
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert SECRET not in page
    summaries = {event.action: event.summary for event in response.context["activity"]}
    assert summaries["lineage.added"] == f"model/fraud@1 trained_on {event_text.HIDDEN_VERSION}"
    assert summaries["version.created"] == (
        f"model/fraud@1 (trained_on {event_text.HIDDEN_VERSION}, evaluated_on dataset/public-sample@1)"
    )
    assert summaries["evaluation.added"] == f"holdout of model/fraud@1 on {event_text.HIDDEN_DATASET}"
    # The events are still listed: they are about the model, which the viewer sees.
    assert {event.asset_id for event in response.context["activity"]} == {model.pk}


def test_someone_who_sees_the_dataset_reads_its_name(trained):
    viewer, _, secret = trained
    assign_perm("registry.view_asset", viewer, secret)
    summaries = {event.action: event.summary for event in selectors.activity_list_for_user(user=viewer)}
    assert summaries["lineage.added"] == f"model/fraud@1 trained_on dataset/{SECRET}@2"
    assert summaries["evaluation.added"] == f"holdout of model/fraud@1 on dataset/{SECRET}@2"


def test_auditors_read_every_name_without_asking(trained, auditor, django_assert_num_queries):
    with django_assert_num_queries(1):  # the latest events; nothing to filter, nothing to ask
        activity = selectors.activity_list_for_user(user=auditor)
    assert any(SECRET in event.summary for event in activity)


@pytest.mark.parametrize("rows", [2, 12])
def test_naming_checks_cost_one_query_however_many_events_name_other_assets(
    trained, admin, django_assert_num_queries, rows
):
    viewer, model, _ = trained
    for index in range(rows):
        hidden = AssetFactory(kind=AssetKind.DATASET, name=f"hidden-{index}")
        VersionFactory(asset=hidden, uri="s3://bucket/h")
        registry.version_register(
            actor=admin,
            source=SRC,
            asset=model,
            data={"digest": digest_for(f"fraud-{index + 2}")},
            lineage=[(Relation.TRAINED_ON, VersionRef("dataset", f"hidden-{index}", 1))],
        )
    # the ids of the assets vic sees; their latest events; which of the named assets vic sees
    with django_assert_num_queries(3):
        activity = selectors.activity_list_for_user(user=viewer)
    assert not [event for event in activity if "hidden-" in event.summary or SECRET in event.summary]


def test_a_raw_event_naming_a_hidden_asset_is_not_shown_by_its_target_text(trained):
    """What the page shows is the summary, never the stored target text of a lineage edge."""
    viewer, _, _ = trained
    edge_event = AuditEvent.objects.get(action="lineage.added")
    assert SECRET in edge_event.target_repr  # the log keeps the full record for auditors
    assert SECRET not in browser(viewer).get("/").content.decode()


def test_unknown_actions_show_no_target_text():
    class Event:
        action = "something.new"
        target_repr = f"dataset/{SECRET}@1"
        changes = {}

    assert event_text.summary(Event(), visible=set()) == ""
    assert event_text.asset_name("model/fraud@12") == ("model", "fraud")


def test_no_page_the_viewer_can_open_names_the_hidden_dataset(trained):
    viewer, _, _ = trained
    client = browser(viewer)
    for url in (
        "/",
        "/registry/",
        "/registry/model/fraud/",
        "/registry/model/fraud/versions/1/",
        "/registry/model/fraud/compare/?a=1&b=1",
        "/api/v1/models/fraud/versions/1",
        "/api/v1/models/fraud/versions/1/lineage",
        "/api/v1/models/fraud/versions/1/evaluations",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode(), url


def test_those_who_see_many_assets_get_the_events_of_their_own_assets(admin, monkeypatch):
    """Past FEW_ASSETS visible assets the log is walked backwards with SQL compiled once per shape: two people
    with different grants still get their own events, and an admin every asset's."""
    monkeypatch.setattr("approvals.selectors.FEW_ASSETS", 1)
    vic, wes = UserFactory(username="vic"), UserFactory(username="wes")
    assets = [AssetFactory(kind=AssetKind.MODEL, name=f"m{index}") for index in range(4)]
    for asset in assets:
        registry.version_register(
            actor=admin, source=SRC, asset=asset, data={"digest": digest_for(asset.name)}
        )
    for asset in assets[:2]:
        assign_perm("registry.view_asset", vic, asset)
    for asset in assets[2:]:
        assign_perm("registry.view_asset", wes, asset)
    for _ in range(2):  # the second round runs on the compiled SQL
        seen = {
            who: {event.asset_id for event in selectors.activity_list_for_user(user=who)}
            for who in (vic, wes)
        }
        assert seen == {vic: {a.pk for a in assets[:2]}, wes: {a.pk for a in assets[2:]}}
        everything = {event.asset_id for event in selectors.activity_list_for_user(user=admin)}
        assert everything >= {a.pk for a in assets}
