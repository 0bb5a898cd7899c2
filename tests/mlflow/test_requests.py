"""The MLflow routes request by request: error shapes, bad input (4xx, never 5xx), scopes, query counts."""

import json

import pytest
from django.contrib.auth.models import Permission

from accounts.models import Scope
from audit.models import AuditEvent
from registry.content import DIGEST_NOT_GIVEN
from registry.models import AssetKind, AssetVersion, StagePointer
from tests.factories import AssetFactory, TokenFactory, UserFactory, VersionFactory, grant
from tests.helpers import api_client

API = "/mlflow/api/2.0/mlflow"


@pytest.fixture
def person(db):
    user = UserFactory(username="mara")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="registry", codename="add_asset")
    )
    return user


@pytest.fixture
def client(person):
    return api_client(token=TokenFactory(account=person, scopes=[Scope.READ, Scope.WRITE]).token)


@pytest.fixture
def churn(person):
    asset = AssetFactory(name="churn")
    grant(person, asset, "manage")
    VersionFactory(asset=asset, uri="s3://b/1")
    VersionFactory(asset=asset, uri="s3://b/2")
    return asset


def _error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error_code", "message"}
    assert body["error_code"] == code
    return body["message"]


def test_the_shapes_of_a_model_and_a_version(client, churn):
    StagePointer.objects.create(
        asset=churn, stage_id=1, version=churn.versions.get(number=2), updated_at="2026-01-01T00:00:00Z"
    )
    model = client.get(f"{API}/registered-models/get", {"name": "churn"}).json()["registered_model"]
    assert model["name"] == "churn"
    assert isinstance(model["creation_timestamp"], int)
    assert model["aliases"][0]["version"] == "2"
    assert model["latest_versions"][0]["version"] == "2"
    version = client.get(f"{API}/model-versions/get", {"name": "churn", "version": "2"}).json()[
        "model_version"
    ]
    assert version["version"] == "2"
    assert version["status"] == "READY"
    assert version["source"] == "s3://b/2"
    assert {"key": "digest", "value": churn.versions.get(number=2).digest} in version["tags"]


def test_the_ajax_api_prefix_serves_the_same_routes(client, churn):
    response = client.get("/mlflow/ajax-api/2.0/mlflow/registered-models/get", {"name": "churn"})
    assert response.json()["registered_model"]["name"] == "churn"


@pytest.mark.parametrize(
    "path",
    [
        "/mlflow/api/2.0/mlflow/runs/create",
        "/mlflow/api/2.0/mlflow/experiments/get-by-name",
        "/mlflow/api/2.0/mlflow/logged-models",
        "/mlflow/api/2.0/mlflow-artifacts/artifacts/x",
        "/mlflow/api/3.0/mlflow/traces",
        "/mlflow/",
    ],
)
def test_what_is_not_served_answers_endpoint_not_found(anon, path):
    for method in (anon.get, anon.post):
        message = _error(method(path, {}, format="json"), 404, "ENDPOINT_NOT_FOUND")
        assert "tracking server" in message


def test_a_served_path_with_another_method_is_not_found(client, churn):
    _error(client.put(f"{API}/registered-models/get", {}, format="json"), 404, "ENDPOINT_NOT_FOUND")


def test_without_a_token_the_answer_is_unauthenticated(anon, churn):
    _error(anon.get(f"{API}/registered-models/get", {"name": "churn"}), 401, "UNAUTHENTICATED")
    bad = api_client(token="mgr_000000000000_nope")
    _error(bad.get(f"{API}/registered-models/get", {"name": "churn"}), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "words"),
    [
        (
            "get",
            "model-versions/get",
            {"name": "churn", "version": "x"},
            "INVALID_PARAMETER_VALUE",
            "version",
        ),
        (
            "get",
            "model-versions/get",
            {"name": "churn", "version": "-1"},
            "INVALID_PARAMETER_VALUE",
            "version",
        ),
        ("get", "model-versions/get", {"name": "churn"}, "INVALID_PARAMETER_VALUE", "version"),
        (
            "get",
            "model-versions/get",
            {"name": "churn", "version": "9"},
            "RESOURCE_DOES_NOT_EXIST",
            "version=9",
        ),
        ("get", "registered-models/get", {}, "INVALID_PARAMETER_VALUE", "'name'"),
        ("get", "registered-models/get", {"name": "a\x00b"}, "INVALID_PARAMETER_VALUE", "NUL"),
        ("get", "registered-models/search", {"order_by": "name\x00"}, "INVALID_PARAMETER_VALUE", "NUL"),
        ("get", "registered-models/search", {"max_results": "0"}, "INVALID_PARAMETER_VALUE", "max_results"),
        ("get", "registered-models/search", {"max_results": "x"}, "INVALID_PARAMETER_VALUE", "max_results"),
        ("get", "registered-models/search", {"page_token": "!!"}, "INVALID_PARAMETER_VALUE", "page_token"),
        (
            "get",
            "registered-models/search",
            {"filter": "name = "},
            "INVALID_PARAMETER_VALUE",
            "filter_string",
        ),
        ("get", "registered-models/search", {"filter": "name ~ 'x'"}, "INVALID_PARAMETER_VALUE", "filter"),
        ("get", "registered-models/search", {"filter": "tags.a = 'b'"}, "INVALID_PARAMETER_VALUE", "tags.a"),
        ("get", "registered-models/search", {"filter": "name = 'a' OR"}, "INVALID_PARAMETER_VALUE", "AND"),
        ("get", "registered-models/search", {"order_by": "owner"}, "INVALID_PARAMETER_VALUE", "order_by"),
        (
            "get",
            "model-versions/search",
            {"filter": "version_number = 'x'"},
            "INVALID_PARAMETER_VALUE",
            "number",
        ),
        (
            "get",
            "registered-models/alias",
            {"name": "churn", "alias": "canary"},
            "RESOURCE_DOES_NOT_EXIST",
            "alias",
        ),
        ("post", "registered-models/create", {"name": "Bad Name!"}, "INVALID_PARAMETER_VALUE", "name"),
        ("post", "registered-models/create", {"name": "churn"}, "RESOURCE_ALREADY_EXISTS", "already exists"),
        ("post", "registered-models/create", {"name": 5}, "INVALID_PARAMETER_VALUE", "string"),
        ("post", "registered-models/create", {"name": "x", "tags": "a"}, "INVALID_PARAMETER_VALUE", "tags"),
        (
            "post",
            "registered-models/create",
            {"name": "x", "tags": [{"key": "k" * 60}]},
            "INVALID_PARAMETER_VALUE",
            "50",
        ),
        ("post", "model-versions/create", {"name": "churn"}, "INVALID_PARAMETER_VALUE", "source"),
        (
            "post",
            "model-versions/create",
            {"name": "churn", "source": "s" * 1001},
            "INVALID_PARAMETER_VALUE",
            "1000",
        ),
        (
            "post",
            "model-versions/create",
            {"name": "churn", "source": "s3://b", "tags": [{"key": "digest", "value": "md5:1"}]},
            "INVALID_PARAMETER_VALUE",
            "sha256",
        ),
        (
            "post",
            "model-versions/create",
            {"name": "churn", "source": "s3://b", "tags": [{"key": "dataset:nope@1", "value": ""}]},
            "INVALID_PARAMETER_VALUE",
            "dataset",
        ),
        (
            "post",
            "registered-models/alias",
            {"name": "churn", "alias": "canary", "version": "1"},
            "INVALID_PARAMETER_VALUE",
            "stage",
        ),
        (
            "post",
            "model-versions/transition-stage",
            {"name": "churn", "version": "1", "stage": "Archived"},
            "INVALID_PARAMETER_VALUE",
            "leaves a stage",
        ),
        (
            "post",
            "model-versions/set-tag",
            {"name": "churn", "version": "1", "key": "digest", "value": "x"},
            "INVALID_PARAMETER_VALUE",
            "immutable",
        ),
        (
            "delete",
            "model-versions/delete-tag",
            {"name": "churn", "version": "1", "key": "nope"},
            "RESOURCE_DOES_NOT_EXIST",
            "nope",
        ),
        (
            "post",
            "registered-models/rename",
            {"name": "churn", "new_name": "x"},
            "PERMISSION_DENIED",
            "renamed",
        ),
        (
            "delete",
            "registered-models/alias",
            {"name": "churn", "alias": "staging"},
            "PERMISSION_DENIED",
            "never emptied",
        ),
        (
            "delete",
            "registered-models/alias",
            {"name": "churn", "alias": "production"},
            "PERMISSION_DENIED",
            "promotion",
        ),
        (
            "delete",
            "model-versions/delete",
            {"name": "churn", "version": "1"},
            "PERMISSION_DENIED",
            "immutable",
        ),
    ],
)
def test_bad_input_answers_4xx_in_mlflows_shape_and_changes_nothing(
    client, churn, method, path, body, code, words
):
    before = (AuditEvent.objects.count(), AssetVersion.objects.count())
    send = getattr(client, method)
    response = send(f"{API}/{path}", body) if method == "get" else send(f"{API}/{path}", body, format="json")
    status = {"INVALID_PARAMETER_VALUE": 400, "RESOURCE_ALREADY_EXISTS": 400, "RESOURCE_DOES_NOT_EXIST": 404}
    status |= {"PERMISSION_DENIED": 403}
    assert words in _error(response, status[code], code)
    assert (AuditEvent.objects.count(), AssetVersion.objects.count()) == before


@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b'"text"', b'{"name": "x", "tags": [1]}'])
def test_malformed_bodies_are_refused(client, churn, body):
    response = client.generic(
        "POST", f"{API}/registered-models/create", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error_code"] in {"BAD_REQUEST", "INVALID_PARAMETER_VALUE"}


def test_a_version_without_digest_is_stored_and_shown_as_not_given(client, churn):
    body = {"name": "churn", "source": "s3://b/3", "run_link": "https://mlflow.example.test/#/runs/r1"}
    response = client.post(f"{API}/model-versions/create", body, format="json")
    assert response.status_code == 200
    assert {"key": "digest", "value": DIGEST_NOT_GIVEN} in response.json()["model_version"]["tags"]
    version = AssetVersion.objects.get(asset=churn, number=3)
    assert version.digest == DIGEST_NOT_GIVEN
    page = api_client()
    page.force_login(churn.created_by or UserFactory(username="root", global_role="admin"))
    html = page.get("/registry/model/churn/versions/3/").content.decode()
    assert DIGEST_NOT_GIVEN in html
    assert 'href="https://mlflow.example.test/#/runs/r1"' in html  # the run link, on the version's page
    compared = page.get("/registry/model/churn/compare/?a=2&b=3").content.decode()
    assert "Digest not given:" in compared


def test_the_native_api_still_requires_a_digest(person, churn):
    native = api_client(person)
    response = native.post("/api/v1/models/churn/versions", {"uri": "s3://b/3"}, format="json")
    assert response.status_code == 400
    assert "digest" in json.dumps(response.json())


def test_search_pages_with_next_page_token(client, person):
    for index in range(5):
        grant(person, AssetFactory(name=f"m{index}"), "view")
    seen, token = [], None
    while True:
        query = {"max_results": "2"} | ({"page_token": token} if token else {})
        body = client.get(f"{API}/registered-models/search", query).json()
        seen += [model["name"] for model in body["registered_models"]]
        token = body.get("next_page_token")
        if not token:
            break
    assert seen == ["m0", "m1", "m2", "m3", "m4"]
    desc = client.get(f"{API}/registered-models/search", {"order_by": "name DESC", "max_results": "1"})
    assert desc.json()["registered_models"][0]["name"] == "m4"


def test_prompts_are_searched_only_when_asked(client, person):
    grant(person, AssetFactory(name="greeting", kind=AssetKind.PROMPT), "view")
    grant(person, AssetFactory(name="churn"), "view")
    models = client.get(f"{API}/registered-models/search").json()["registered_models"]
    assert [m["name"] for m in models] == ["churn"]
    query = {"filter": "tags.`mlflow.prompt.is_prompt` = 'true' AND name ILIKE 'GREET%'"}
    prompts = client.get(f"{API}/registered-models/search", query).json()["registered_models"]
    assert [m["name"] for m in prompts] == ["greeting"]


def test_search_model_versions_filters_by_number_and_name(client, churn):
    query = {"filter": "name = 'churn' AND version_number >= 2"}
    found = client.get(f"{API}/model-versions/search", query).json()["model_versions"]
    assert [v["version"] for v in found] == ["2"]
    query = {"filter": "name IN ('churn', 'other')", "order_by": "version_number ASC"}
    found = client.get(f"{API}/model-versions/search", query).json()["model_versions"]
    assert [v["version"] for v in found] == ["1", "2"]


def test_resolving_by_alias_costs_the_same_with_many_versions(
    client, churn, person, django_assert_num_queries
):
    def resolve():
        response = client.get(f"{API}/registered-models/alias", {"name": "churn", "alias": "staging"})
        assert response.status_code == 200

    StagePointer.objects.create(
        asset=churn, stage_id=1, version=churn.versions.get(number=1), updated_at="2026-01-01T00:00:00Z"
    )
    resolve()  # the token's first use is recorded (at most once a minute)
    # the token; the asset's stage pointers with their versions (visibility included)
    with django_assert_num_queries(2):
        resolve()
    for _ in range(20):
        VersionFactory(asset=churn)
    with django_assert_num_queries(2):
        resolve()


def test_search_costs_the_same_with_more_rows(client, person, django_assert_num_queries):
    def search():
        assert client.get(f"{API}/model-versions/search", {"max_results": "100"}).status_code == 200

    asset = AssetFactory(name="churn")
    grant(person, asset, "view")
    VersionFactory(asset=asset)
    search()  # the token's first use is recorded (at most once a minute)
    # the token, the page of versions (visibility included), their stages
    with django_assert_num_queries(3):
        search()
    for index in range(10):
        other = AssetFactory(name=f"m{index}")
        grant(person, other, "view")
        VersionFactory(asset=other)
    with django_assert_num_queries(3):
        search()
