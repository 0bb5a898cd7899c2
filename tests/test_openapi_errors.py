"""The OpenAPI schema documents every operation's error answers (core/openapi.py): RFC 9457 problems, with an
example per problem type; and what the API really answers matches them (tests/test_schemathesis.py checks
that no input makes the server fail; here real refusals are checked against the documented schema)."""

import json
import re
from pathlib import Path

import jsonschema
import pytest
from django.test import Client

from core.openapi import PROBLEM_MEDIA_TYPE, PROBLEM_TYPES
from tests.factories import AssetFactory, VersionFactory
from tests.helpers import api_client

pytestmark = pytest.mark.django_db
METHODS = ("get", "post", "put", "patch", "delete")
DOCUMENTED_TYPES = set(re.findall(r"^\| \d{3} \| `([a-z-]+)`", Path("docs/api.md").read_text(), re.M))


@pytest.fixture(scope="module")
def schema():
    response = Client().get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert response.status_code == 200
    return json.loads(response.content)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def problem_validator(schema):
    """A validator of the Problem component, resolving its references inside the schema."""
    definition = {**schema["components"]["schemas"]["Problem"], "components": schema["components"]}
    return jsonschema.Draft7Validator(definition)


def test_every_operation_lists_its_error_answers_with_the_problem_schema(schema):
    listed = list(operations(schema))
    assert len(listed) >= 80
    for path, method, operation in listed:
        statuses = {code for code in operation["responses"] if code.startswith(("4", "5"))}
        expected = {"400", "401", "403", "406", "503"} | ({"404"} if "{" in path else set())
        if method in ("post", "put", "patch") and "requestBody" in operation:
            expected |= {"413", "415"}
        assert expected <= statuses, (method, path, statuses)
        for status in statuses:
            content = operation["responses"][status]["content"]
            assert list(content) == [PROBLEM_MEDIA_TYPE], (method, path, status)
            assert content[PROBLEM_MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert content[PROBLEM_MEDIA_TYPE]["examples"], (method, path, status)


def test_the_problem_schema_and_every_example(schema):
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"errors", "current_version", "current_state", "failed_gates"} <= set(problem["properties"])
    assert set(problem["properties"]["errors"]["items"]["properties"]) == {"field", "message"}
    validator = problem_validator(schema)
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            for example in response["content"][PROBLEM_MEDIA_TYPE]["examples"].values():
                validator.validate(example["value"])
                assert example["value"]["status"] == int(status), (method, path, example)


def test_every_problem_type_of_the_docs_is_in_the_schema(schema):
    in_schema = {
        example["value"]["type"]
        for _, _, operation in operations(schema)
        for status, response in operation["responses"].items()
        if status.startswith(("4", "5"))
        for example in response["content"][PROBLEM_MEDIA_TYPE]["examples"].values()
    }
    # Not in the schema: 405 (a method the route does not have), 500 (nothing documents a crash).
    assert len(DOCUMENTED_TYPES) > 40
    assert DOCUMENTED_TYPES - in_schema == {"method-not-allowed", "server-error"}
    assert in_schema <= {problem.type for problem in PROBLEM_TYPES}


def documented(schema, path: str, method: str, status: int) -> dict:
    return schema["paths"][path][method]["responses"][str(status)]["content"][PROBLEM_MEDIA_TYPE]


@pytest.fixture
def arranged(admin, reviewer, fraud):
    for _ in range(2):
        VersionFactory(asset=fraud)
    return fraud


def test_real_refusals_match_what_the_schema_says(schema, arranged, admin, reviewer, outsider):
    """Each refusal: its status is listed for the operation, its body validates against the Problem schema,
    and its type is one of the operation's examples for that status."""
    validator = problem_validator(schema)
    asset = AssetFactory(name="hidden")
    cases = [
        (api_client(), "get", "/api/v1/models", "/api/v1/models", None, 401, "not-authenticated"),
        (api_client(token="mgr_bad"), "get", "/api/v1/me", "/api/v1/me", None, 401, "token-invalid"),
        (
            api_client(outsider),
            "get",
            f"/api/v1/models/{asset.name}",
            "/api/v1/models/{name}",
            None,
            404,
            "not-found",
        ),
        (
            api_client(admin),
            "get",
            "/api/v1/models?page_size=0",
            "/api/v1/models",
            None,
            400,
            "invalid-input",
        ),
        (
            api_client(admin),
            "get",
            "/api/v1/models?cursor=zzz",
            "/api/v1/models",
            None,
            400,
            "invalid-cursor",
        ),
        (
            api_client(admin),
            "post",
            "/api/v1/models",
            "/api/v1/models",
            {"name": "fraud"},
            409,
            "duplicate-name",
        ),
        (
            api_client(reviewer),
            "post",
            "/api/v1/models",
            "/api/v1/models",
            {"name": "new"},
            403,
            "permission-denied",
        ),
        (
            api_client(admin),
            "post",
            "/api/v1/models/fraud/versions",
            "/api/v1/models/{name}/versions",
            {"digest": "nope"},
            400,
            "invalid-input",
        ),
        (
            api_client(admin),
            "put",
            "/api/v1/models/fraud/stages/production",
            "/api/v1/models/{name}/stages/{stage}",
            {"version": 1},
            409,
            "stage-protected",
        ),
        (
            api_client(admin),
            "get",
            "/api/v1/models/fraud/stages/staging",
            "/api/v1/models/{name}/stages/{stage}",
            None,
            404,
            "stage-empty",
        ),
        (
            api_client(admin),
            "post",
            "/api/v1/promotions",
            "/api/v1/promotions",
            {"kind": "model", "name": "fraud", "version": 2, "stage": "production", "justification": "x"},
            400,
            "idempotency-key-missing",
        ),
    ]
    for client, method, url, path, body, status, type_ in cases:
        response = getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)
        assert response.status_code == status, (url, response.content)
        assert response["Content-Type"] == PROBLEM_MEDIA_TYPE
        validator.validate(response.json())
        assert response.json()["type"] == type_
        examples = documented(schema, path, method, status)["examples"].values()
        assert type_ in {example["value"]["type"] for example in examples}, (method, path, status, type_)


def test_the_oidc_exchange_documents_its_429_and_answers_it(schema, settings):
    """Only the exchange answers 429 (its address lock), with Retry-After; the real answer matches."""
    with_429 = {
        (path, method) for path, method, operation in operations(schema) if "429" in operation["responses"]
    }
    assert with_429 == {("/api/v1/auth/oidc/token", "post")}
    answer = schema["paths"]["/api/v1/auth/oidc/token"]["post"]["responses"]["429"]
    assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer"}
    settings.OIDC_EXCHANGE_FAILURE_LIMIT = 1
    client = Client(REMOTE_ADDR="10.8.0.1")
    body = json.dumps({"token": "not-a-jwt"})
    assert client.post("/api/v1/auth/oidc/token", body, content_type="application/json").status_code == 401
    response = client.post("/api/v1/auth/oidc/token", body, content_type="application/json")
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert response["Content-Type"] == PROBLEM_MEDIA_TYPE
    problem_validator(schema).validate(response.json())
    examples = answer["content"][PROBLEM_MEDIA_TYPE]["examples"].values()
    assert response.json()["type"] in {example["value"]["type"] for example in examples}
