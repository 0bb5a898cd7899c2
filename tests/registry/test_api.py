"""API tests: wiring, error shape, one audit event per change, none on failure, pinned query counts."""

import itertools

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from registry.models import Asset, AssetKind, AssetVersion, Evaluation, LineageEdge, StagePointer
from tests.factories import AssetFactory, EdgeFactory, VersionFactory, digest_for

pytestmark = pytest.mark.django_db


def problem(response, status, type_):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == type_
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def snapshot():
    """Counts of every registry table and the audit log, to prove a refused request changed nothing."""
    return (
        Asset.objects.count(),
        AssetVersion.objects.count(),
        Evaluation.objects.count(),
        LineageEdge.objects.count(),
        StagePointer.objects.count(),
        AuditEvent.objects.count(),
        list(Asset.objects.values_list("description", "tags", "risk_tier", "archived_at")),
        list(AssetVersion.objects.values_list("description", "tags")),
    )


@pytest.fixture
def model():
    return AssetFactory(name="fraud")


@pytest.fixture
def version(model):
    return VersionFactory(asset=model)


# Assets -------------------------------------------------------------------------------------------


def test_create_asset(api):
    response = api.post("/api/v1/models", {"name": "fraud", "tags": ["risk"]}, format="json")
    assert response.status_code == 201, response.content
    assert response["Location"] == "/api/v1/models/fraud"
    assert response.json()["latest_version"] == 0
    assert AuditEvent.objects.get().action == "asset.created"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Bad Name"}, "name"),
        ({}, "name"),
        ({"name": "ok", "risk_tier": "extreme"}, "risk_tier"),
        ({"name": "ok", "team": "no-such-team"}, "team"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({"name": "ok", "tags": "notalist"}, "tags"),
    ],
)
def test_create_asset_bad_input(api, body, field):
    before = snapshot()
    body = problem(api.post("/api/v1/models", body, format="json"), 400, "invalid-input")
    assert field in [error["field"] for error in body["errors"]]
    assert snapshot() == before


def test_create_duplicate_is_409(api, model):
    before = snapshot()
    problem(api.post("/api/v1/models", {"name": "fraud"}, format="json"), 409, "duplicate-name")
    assert snapshot() == before


def test_patch_asset(api, model):
    response = api.patch("/api/v1/models/fraud", {"description": "new", "risk_tier": "high"}, format="json")
    assert response.status_code == 200
    assert response.json()["risk_tier"] == "high"
    event = AuditEvent.objects.get()
    assert event.changes["before"] == {"description": "An asset.", "risk_tier": "medium"}


def test_patch_asset_bad_input(api, model):
    before = snapshot()
    body = problem(api.patch("/api/v1/models/fraud", {"name": "x"}, format="json"), 400, "invalid-input")
    assert body["errors"][0]["field"] == "name"
    problem(api.patch("/api/v1/models/fraud", {"tags": [""]}, format="json"), 400, "invalid-input")
    assert snapshot() == before


def test_archive(api, model):
    assert api.post("/api/v1/models/fraud/archive", {"reason": "retired"}, format="json").status_code == 200
    assert api.get("/api/v1/models/fraud").json()["archived"] is True
    before = snapshot()
    problem(api.post("/api/v1/models/fraud/archive", {}, format="json"), 409, "asset-archived")
    problem(api.post("/api/v1/models/fraud/archive", {"why": 1}, format="json"), 400, "invalid-input")
    assert snapshot() == before
    assert AuditEvent.objects.count() == 1


def test_unknown_asset_and_kind_are_404(api):
    for url in [
        "/api/v1/models/nope",
        "/api/v1/models/nope/versions",
        "/api/v1/models/nope/versions/1",
        "/api/v1/models/nope/versions/1/evaluations",
        "/api/v1/models/nope/versions/1/lineage",
        "/api/v1/models/nope/stages",
        "/api/v1/models/nope/stages/staging",
    ]:
        assert api.get(url).json() == {
            "type": "not-found",
            "title": "Not found",
            "status": 404,
            "detail": "Not found.",
        }, url
    assert api.get("/api/v1/widgets").status_code == 404


def test_anonymous_is_401_and_wrong_method_is_405(anon, api, model):
    problem(anon.get("/api/v1/models"), 401, "not-authenticated")
    problem(anon.post("/api/v1/models", {"name": "x"}, format="json"), 401, "not-authenticated")
    problem(api.delete("/api/v1/models/fraud"), 405, "method-not-allowed")
    problem(api.put("/api/v1/models/fraud", {}, format="json"), 405, "method-not-allowed")
    assert not AuditEvent.objects.exists()


def test_malformed_json_is_400(api):
    response = api.generic("POST", "/api/v1/models", "{not json", content_type="application/json")
    problem(response, 400, "invalid-json")


# Versions -----------------------------------------------------------------------------------------


def test_register_model_version_with_lineage(api, model):
    dataset = VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="transactions"))
    body = {
        "digest": digest_for("m1"),
        "metrics": {"auc": 0.93},
        "params": {"depth": 6},
        "model_card": "# Fraud",
        "source": {"commit": "a" * 40, "run_url": "https://ci.example.com/runs/1"},
        "lineage": [{"relation": "trained_on", "kind": "dataset", "name": "transactions", "version": 1}],
    }
    response = api.post("/api/v1/models/fraud/versions", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["version"], data["metrics"], data["source"]["commit"]) == (1, {"auc": 0.93}, "a" * 40)
    assert response["Location"] == "/api/v1/models/fraud/versions/1"
    assert LineageEdge.objects.get().parent == dataset
    assert AuditEvent.objects.count() == 1


def test_register_prompt_version(api):
    AssetFactory(kind=AssetKind.PROMPT, name="reply")
    body = {
        "template": "Answer {{question}} for {{product}}",
        "model_config": {"model": "m", "temperature": 0.2},
    }
    response = api.post("/api/v1/prompts/reply/versions", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["variables"] == ["question", "product"]
    assert response.json()["digest"].startswith("sha256:")
    assert "metrics" not in response.json()


def test_register_dataset_version(api):
    AssetFactory(kind=AssetKind.DATASET, name="tx")
    body = {"digest": digest_for("d"), "uri": "s3://b/tx.parquet", "row_count": 10, "schema": {"a": "int"}}
    response = api.post("/api/v1/datasets/tx/versions", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["row_count"] == 10


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"digest": "sha256:xyz"}, "digest"),
        ({}, "digest"),
        ({"digest": digest_for("a"), "metrics": {"auc": "high"}}, "metrics.auc"),
        ({"digest": digest_for("a"), "template": "x"}, "template"),
        ({"digest": digest_for("a"), "source": {"commit": "not-hex"}}, "source.commit"),
        (
            {
                "digest": digest_for("a"),
                "lineage": [{"relation": "trained_on", "kind": "dataset", "name": "nope", "version": 4}],
            },
            "lineage[0]",
        ),
        (
            {
                "digest": digest_for("a"),
                "lineage": [{"relation": "cousin_of", "kind": "dataset", "name": "x", "version": 1}],
            },
            "lineage[0].relation",
        ),
    ],
)
def test_register_bad_input_changes_nothing(api, model, body, field):
    before = snapshot()
    response = api.post("/api/v1/models/fraud/versions", body, format="json")
    body = problem(response, 400, response.json()["type"])
    assert field in [error["field"] for error in body["errors"]], body
    assert snapshot() == before


def test_register_unknown_lineage_names_it(api, model):
    body = {
        "digest": digest_for("a"),
        "lineage": [{"relation": "trained_on", "kind": "dataset", "name": "transactions", "version": 4}],
    }
    data = problem(api.post("/api/v1/models/fraud/versions", body, format="json"), 400, "unknown-version")
    assert "dataset/transactions version 4 does not exist" in data["detail"]


def test_patch_version_only_description_and_tags(api, version):
    url = "/api/v1/models/fraud/versions/1"
    before = snapshot()
    data = problem(api.patch(url, {"digest": digest_for("b")}, format="json"), 400, "invalid-input")
    assert data["errors"] == [
        {"field": "digest", "message": "is immutable; only description and tags can change"}
    ]
    assert snapshot() == before
    response = api.patch(url, {"description": "better", "tags": ["candidate"]}, format="json")
    assert response.status_code == 200
    assert response.json()["tags"] == ["candidate"]
    assert AuditEvent.objects.count() == 1


def test_version_list_and_detail(api, version):
    assert api.get("/api/v1/models/fraud/versions").json()["results"][0]["version"] == 1
    assert api.get("/api/v1/models/fraud/versions/1").json()["digest"] == version.digest
    assert api.get("/api/v1/models/fraud/versions/2").status_code == 404


# Evaluations --------------------------------------------------------------------------------------


def test_evaluations(api, version):
    VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="holdout"))
    url = "/api/v1/models/fraud/versions/1/evaluations"
    body = {"name": "nightly", "metrics": {"auc": 0.95}, "dataset": {"name": "holdout", "version": 1}}
    response = api.post(url, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["dataset"]["name"] == "holdout"
    assert AuditEvent.objects.count() == 1
    before = snapshot()
    problem(api.post(url, {"name": "x", "metrics": {}}, format="json"), 400, "invalid-input")
    problem(api.post(url, {"metrics": {"a": 1}}, format="json"), 400, "invalid-input")
    data = problem(
        api.post(
            url,
            {"name": "x", "metrics": {"a": 1}, "dataset": {"name": "holdout", "version": 9}},
            format="json",
        ),
        400,
        "unknown-version",
    )
    assert data["errors"][0]["field"] == "dataset"
    assert snapshot() == before
    assert api.get(url + "?name=nightly").json()["results"][0]["metrics"] == {"auc": 0.95}
    assert api.get(url + "?name=other").json()["results"] == []


# Lineage ------------------------------------------------------------------------------------------


def chain(length):
    versions = [VersionFactory(asset=AssetFactory(name=f"link-{i}")) for i in range(length)]
    for parent, child in itertools.pairwise(versions):
        EdgeFactory(parent=parent, child=child)
    return versions


def test_lineage_walks_both_directions(api):
    versions = chain(4)
    up = api.get("/api/v1/models/link-3/versions/1/lineage?direction=upstream&depth=2").json()
    assert [(e["parent"]["name"], e["depth"]) for e in up["edges"]] == [("link-2", 1), ("link-1", 2)]
    down = api.get("/api/v1/models/link-0/versions/1/lineage?direction=downstream&depth=10").json()
    assert [e["child"]["name"] for e in down["edges"]] == ["link-1", "link-2", "link-3"]
    assert len(versions) == 4
    problem(api.get("/api/v1/models/link-0/versions/1/lineage?direction=sideways"), 400, "invalid-input")
    problem(api.get("/api/v1/models/link-0/versions/1/lineage?depth=1000"), 400, "invalid-input")


@pytest.mark.parametrize("length", [5, 101])
def test_lineage_query_count_is_constant(api, django_assert_num_queries, length):
    chain(length)
    # 1 asset, 1 version, 1 recursive walk, 1 fetch of the edges with both ends and their assets.
    with django_assert_num_queries(4):
        body = api.get(f"/api/v1/models/link-{length - 1}/versions/1/lineage?depth=100").json()
    assert len(body["edges"]) == min(length - 1, 100)


def test_lineage_post_refuses_cycles(api):
    chain(3)
    url = "/api/v1/models/link-0/versions/1/lineage"
    before = snapshot()
    body = {"relation": "derived_from", "kind": "model", "name": "link-2", "version": 1}
    problem(api.post(url, body, format="json"), 409, "lineage-cycle")
    problem(api.post(url, {**body, "name": "link-0"}, format="json"), 409, "lineage-cycle")
    problem(api.post(url, {**body, "version": 7}, format="json"), 400, "unknown-version")
    assert snapshot() == before
    ok = api.post("/api/v1/models/link-2/versions/1/lineage", {**body, "name": "link-0"}, format="json")
    assert ok.status_code == 201, ok.content
    assert AuditEvent.objects.count() == 1


# Stages -------------------------------------------------------------------------------------------


def test_stage_put_get_and_etag(api, model):
    VersionFactory(asset=model)
    VersionFactory(asset=model)
    url = "/api/v1/models/fraud/stages/staging"
    problem(api.get(url), 404, "stage-empty")
    response = api.put(url, {"version": 1, "reason": "smoke"}, format="json")
    assert response.status_code == 200, response.content
    first = api.get(url)
    assert first.json()["version"] == 1
    etag = first["ETag"]
    assert api.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    api.put(url, {"version": 2}, format="json")
    second = api.get(url, HTTP_IF_NONE_MATCH=etag)
    assert second.status_code == 200
    assert second.json()["version"] == 2
    assert second["ETag"] != etag
    stages = api.get("/api/v1/models/fraud/stages").json()
    assert [(row["stage"], row["version"]) for row in stages] == [("staging", 2), ("production", None)]
    assert AuditEvent.objects.count() == 2


def test_stage_put_refusals_change_nothing(api, model):
    VersionFactory(asset=model)
    api.put("/api/v1/models/fraud/stages/staging", {"version": 1}, format="json")
    before = snapshot()
    data = problem(
        api.put("/api/v1/models/fraud/stages/production", {"version": 1}, format="json"),
        409,
        "stage-protected",
    )
    assert "approved promotion" in data["detail"]
    problem(
        api.put("/api/v1/models/fraud/stages/staging", {"version": 1}, format="json"), 409, "already-in-stage"
    )
    problem(
        api.put("/api/v1/models/fraud/stages/staging", {"version": 9}, format="json"), 400, "invalid-input"
    )
    problem(api.put("/api/v1/models/fraud/stages/staging", {}, format="json"), 400, "invalid-input")
    problem(api.put("/api/v1/models/fraud/stages/nope", {"version": 1}, format="json"), 404, "not-found")
    assert snapshot() == before


def test_global_stage_list(api):
    body = api.get("/api/v1/stages").json()
    assert [(s["name"], s["protected"]) for s in body] == [("staging", False), ("production", True)]


def test_stage_resolve_is_one_query(api, model, django_assert_num_queries):
    VersionFactory(asset=model)
    api.put("/api/v1/models/fraud/stages/staging", {"version": 1}, format="json")
    with django_assert_num_queries(1):
        assert api.get("/api/v1/models/fraud/stages/staging").status_code == 200


# Lists: query counts do not grow with rows --------------------------------------------------------


@pytest.mark.parametrize("rows", [3, 60])
def test_list_query_counts_are_pinned(api, django_assert_num_queries, rows):
    model = AssetFactory(name="big")
    for i in range(rows):
        AssetFactory(name=f"m-{i}")
        version = VersionFactory(asset=model)
        version.evaluations.create(name="e", metrics={"a": 1})
    # assets: 1 page query (team and creator joined).
    with django_assert_num_queries(1):
        assert api.get("/api/v1/models").status_code == 200
    # versions: 1 asset, 1 page.
    with django_assert_num_queries(2):
        assert api.get("/api/v1/models/big/versions").status_code == 200
    # evaluations: 1 asset, 1 version, 1 page.
    with django_assert_num_queries(3):
        assert api.get("/api/v1/models/big/versions/1/evaluations").status_code == 200
    # stages: 1 asset, 1 pointers, 1 stages.
    with django_assert_num_queries(3):
        assert api.get("/api/v1/models/big/stages").status_code == 200


def test_cursor_pagination(api):
    for i in range(5):
        AssetFactory(name=f"m-{i}")
    page = api.get("/api/v1/models?page_size=2").json()
    names = [a["name"] for a in page["results"]]
    while page["next"]:
        page = api.get(page["next"]).json()
        names += [a["name"] for a in page["results"]]
    assert names == [f"m-{i}" for i in range(5)]


def test_asset_filters(api):
    AssetFactory(name="a1", risk_tier="high", description="fraud model")
    AssetFactory(name="a2", risk_tier="low")
    names = lambda query: [a["name"] for a in api.get(f"/api/v1/models?{query}").json()["results"]]  # noqa: E731
    assert names("risk_tier=high") == ["a1"]
    assert names("q=fraud") == ["a1"]
    problem(api.get("/api/v1/models?risk_tier=extreme"), 400, "invalid-input")


def test_openapi_schema_is_valid():
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
