"""Hostile input answers a 4xx problem naming what is wrong, changes nothing, and never a 5xx.

Bodies: nesting past MAX_JSON_DEPTH, integers outside +/-(2^53 - 1), non-finite numbers (1e999, NaN,
Infinity), broken strings. Query parameters: cursors the server did not issue, digits that are not ASCII,
times without a UTC form. And OPTIONS on every route.
"""

import hashlib
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent, AuditHead
from core import parsers
from core.parsers import MAX_JSON_DEPTH, MAX_SAFE_INT
from registry.models import AssetKind, AssetVersion, Evaluation
from tests.factories import AssetFactory, VersionFactory, digest_for
from tests.routes import api_routes

pytestmark = pytest.mark.django_db

BIG = 2**53  # the first integer outside the range
DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture
def assets():
    """model m (v1), dataset d (v1), prompt p: what the bodies below refer to."""
    model = AssetFactory(kind=AssetKind.MODEL, name="m")
    VersionFactory(asset=model)
    VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="d"), uri="s3://b/d")
    AssetFactory(kind=AssetKind.PROMPT, name="p")
    return model


@pytest.fixture
def api(api):
    """The admin's client, answering 500s instead of raising, so that a test sees what a client would."""
    api.raise_request_exception = False
    return api


def head():
    row = AuditHead.objects.filter(pk=1).values_list("seq", "chain_hash").first()
    return (row[0], bytes(row[1])) if row else None


def state():
    return (
        head(),
        AuditEvent.objects.count(),
        AssetVersion.objects.count(),
        Evaluation.objects.count(),
        list(AssetVersion.objects.values_list("metadata", "metrics")),
    )


def send(api, method: str, url: str, body: str | bytes, **headers):
    return api.generic(method, url, body, content_type="application/json", **headers)


def problem(response, status: int, type_: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == type_, body
    assert body["status"] == status
    if field is not None:
        assert [error["field"] for error in body["errors"]] == [field], body
    return body


def raw_version(members: str) -> str:
    """A model version body with members written as raw JSON text (for tokens json.dumps would not write)."""
    return f'{{"digest": "{digest_for(members)}", {members}}}'


def version(**fields) -> str:
    return json.dumps({"digest": digest_for(json.dumps(fields, default=str)), **fields})


PROMOTION = {"kind": "model", "name": "m", "version": 1, "stage": "staging", "justification": "go"}
METRIC_GATE = {"type": "metric", "metric": "auc", "op": ">=", "value": 0.9}

# (method, url, raw JSON body, problem type, field named): each answered 500 before the limits existed.
BODIES = {
    "deep-array": ("POST", "/api/v1/models", DEEP, "too-deep", None),
    "deep-object-in-metadata": (
        "POST",
        "/api/v1/models/m/versions",
        raw_version('"metadata": ' + '{"a":' * 5000 + "1" + "}" * 5000),
        "too-deep",
        None,
    ),
    "promotion-version-2^53": (
        "POST",
        "/api/v1/promotions",
        json.dumps({**PROMOTION, "version": BIG}),
        None,
        "version",
    ),
    "promotion-version-2^64": (
        "POST",
        "/api/v1/promotions",
        json.dumps({**PROMOTION, "version": 2**64}),
        None,
        "version",
    ),
    "promotion-version-string-2^64": (
        "POST",
        "/api/v1/promotions",
        json.dumps({**PROMOTION, "version": str(2**64)}),
        None,
        "version",
    ),
    "promotion-ci-number": (
        "POST",
        "/api/v1/promotions",
        json.dumps({**PROMOTION, "ci": {"n": BIG}}),
        None,
        "ci.n",
    ),
    "version-metrics": (
        "POST",
        "/api/v1/models/m/versions",
        version(metrics={"auc": BIG}),
        None,
        "metrics.auc",
    ),
    "version-params": ("POST", "/api/v1/models/m/versions", version(params={"n": -BIG}), None, "params.n"),
    "version-params-1e999": (
        "POST",
        "/api/v1/models/m/versions",
        raw_version('"params": {"lr": 1e999}'),
        None,
        "params.lr",
    ),
    "version-metadata-1e999": (
        "POST",
        "/api/v1/models/m/versions",
        raw_version('"metadata": {"a": {"b": [1, -1e999]}}'),
        None,
        "metadata.a.b[1]",
    ),
    "version-metadata-NaN": (
        "POST",
        "/api/v1/models/m/versions",
        raw_version('"metadata": {"x": NaN}'),
        None,
        "metadata.x",
    ),
    "version-signature-Infinity": (
        "POST",
        "/api/v1/models/m/versions",
        raw_version('"signature": {"x": Infinity}'),
        None,
        "signature.x",
    ),
    "prompt-model-config": (
        "POST",
        "/api/v1/prompts/p/versions",
        json.dumps({"template": "Say {{x}}", "model_config": {"seed": BIG}}),
        None,
        "model_config.seed",
    ),
    "dataset-row-count": (
        "POST",
        "/api/v1/datasets/d/versions",
        json.dumps({"digest": digest_for("rows"), "uri": "s3://b/r", "row_count": 2**64}),
        None,
        "row_count",
    ),
    "evaluation-metrics": (
        "POST",
        "/api/v1/models/m/versions/1/evaluations",
        json.dumps({"name": "e", "metrics": {"auc": 2**63}}),
        None,
        "metrics.auc",
    ),
    "evaluation-details-1e999": (
        "POST",
        "/api/v1/models/m/versions/1/evaluations",
        '{"name": "e", "metrics": {"auc": 0.9}, "details": {"loss": 1e999}}',
        None,
        "details.loss",
    ),
    "evaluation-dataset-version": (
        "POST",
        "/api/v1/models/m/versions/1/evaluations",
        json.dumps({"name": "e", "metrics": {"auc": 0.9}, "dataset": {"name": "d", "version": 2**64}}),
        None,
        "dataset.version",
    ),
    "lineage-version": (
        "POST",
        "/api/v1/models/m/versions/1/lineage",
        json.dumps({"relation": "evaluated_on", "kind": "dataset", "name": "d", "version": 2**64}),
        None,
        "version",
    ),
    "stage-version": (
        "PUT",
        "/api/v1/models/m/stages/staging",
        json.dumps({"version": 2**64}),
        None,
        "version",
    ),
    "policy-gate-value": (
        "POST",
        "/api/v1/policies",
        json.dumps({"kind": "model", "stage": "staging", "gates": [{**METRIC_GATE, "value": BIG}]}),
        None,
        "gates[0].value",
    ),
    "policy-gate-value-1e999": (
        "POST",
        "/api/v1/policies",
        '{"kind": "model", "stage": "staging", "gates": [{"type": "metric", "metric": "auc", "op": ">=",'
        ' "value": 1e999}]}',
        None,
        "gates[0].value",
    ),
    "policy-gate-op-list": (
        "POST",
        "/api/v1/policies",
        json.dumps({"kind": "model", "stage": "staging", "gates": [{**METRIC_GATE, "op": []}]}),
        None,
        "gates[0].op",
    ),
    "policy-required-approvals": (
        "POST",
        "/api/v1/policies",
        json.dumps({"kind": "model", "stage": "staging", "required_approvals": str(2**64)}),
        None,
        "required_approvals",
    ),
    "string-with-nul": (
        "POST",
        "/api/v1/models/m/versions",
        version(metadata={"note": "a\x00b"}),
        None,
        "metadata.note",
    ),
    "unpaired-surrogate": (
        "POST",
        "/api/v1/models/m/versions",
        raw_version('"metadata": {"note": "\\udc00"}'),
        None,
        "metadata.note",
    ),
    "long-digit-string": ("POST", "/api/v1/models", '{"name": %s}' % ("9" * 5000), None, "name"),
    "malformed": ("POST", "/api/v1/models", '{"name": ', "invalid-json", None),
    "not-utf-8": ("POST", "/api/v1/models", b'{"name": "\xff"}', "invalid-json", None),
}


@pytest.mark.parametrize("case", BODIES, ids=list(BODIES))
def test_hostile_body_is_a_problem_naming_the_field_and_changes_nothing(api, assets, case):
    method, url, body, type_, field = BODIES[case]
    before = state()
    response = send(api, method, url, body, HTTP_IDEMPOTENCY_KEY=f"key-{case}")
    problem(response, 400, type_ or "invalid-input", field)
    assert state() == before


def levels(value) -> int:
    """How many arrays and objects nest in value."""
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + max((levels(child) for child in children), default=0)


def test_the_depth_limit_is_exact_and_deep_allowed_bodies_are_recorded(api, assets):
    """64 levels are taken, stored, audited (RFC 8785 of the event) and read back; 65 are refused."""

    def nested(depth: int) -> str:  # {"digest": …, "metadata": {"a": {"a": … 1}}}: `depth` objects in all
        metadata = '{"a":' * (depth - 1) + "1" + "}" * (depth - 1)
        return json.dumps({"digest": digest_for(str(depth))})[:-1] + f', "metadata": {metadata}}}'

    assert levels(json.loads(nested(MAX_JSON_DEPTH))) == MAX_JSON_DEPTH
    problem(send(api, "POST", "/api/v1/models/m/versions", nested(MAX_JSON_DEPTH + 1)), 400, "too-deep")
    response = send(api, "POST", "/api/v1/models/m/versions", nested(MAX_JSON_DEPTH))
    assert response.status_code == 201, response.content
    assert api.get(response["Location"]).json()["metadata"] == json.loads(nested(MAX_JSON_DEPTH))["metadata"]
    assert AuditEvent.objects.filter(action="version.created").count() == 1
    assert api.get("/api/v1/audit/events").status_code == 200


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_depth_counts_empty_containers_too(opener):
    closer = "]" if opener == "[" else "}"
    inner = "[]" if opener == "[" else "{}"
    assert levels(parsers.loads(opener * (MAX_JSON_DEPTH - 1) + inner + closer * (MAX_JSON_DEPTH - 1)))
    with pytest.raises(parsers.TooDeep):
        parsers.loads(opener * MAX_JSON_DEPTH + inner + closer * MAX_JSON_DEPTH)


def test_unterminated_strings_of_escaped_quotes_fail_fast(api):
    """The parser is linear: an unclosed string of 200,000 escaped quotes is refused at once."""
    started = time.monotonic()
    problem(send(api, "POST", "/api/v1/models", '["' + '\\"' * 200_000), 400, "invalid-json")
    assert time.monotonic() - started < 5


def test_a_body_over_the_size_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    problem(send(api, "POST", "/api/v1/models", json.dumps({"name": "x" * 200})), 413, "too-large")


def test_integers_at_the_limits_are_accepted(api, assets):
    body = version(metrics={"hi": MAX_SAFE_INT, "lo": -MAX_SAFE_INT}, metadata={"f": 1e308})
    response = send(api, "POST", "/api/v1/models/m/versions", body)
    assert response.status_code == 201, response.content
    assert response.json()["metrics"] == {"hi": MAX_SAFE_INT, "lo": -MAX_SAFE_INT}


# Query parameters ---------------------------------------------------------------------------------------

LISTS = [
    "/api/v1/models",
    "/api/v1/models/m/versions",
    "/api/v1/models/m/versions/1/evaluations",
    "/api/v1/promotions",
    "/api/v1/policies",
    "/api/v1/tokens",
    "/api/v1/service-accounts",
    "/api/v1/audit/events",
    "/api/v1/audit/checkpoints",
]
CURSORS = {
    "base64 garbage": "garbage!",
    "base64 of garbage": "Zm9vYmFy",  # foobar
    "huge offset": "bz05OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",  # o=999999999999999999999999
    "negative offset": "bz0tNQ==",  # o=-5
    "not utf-8": "cD0lRkY=",  # p=%FF
    "NUL position": "cD0lMDA=",  # p=%00
    "position not a number": "cj0xJnA9eA==",  # r=1&p=x
    "reverse not 0 or 1": "cj0y",  # r=2
    "repeated token": "bz0xJm89Mg==",  # o=1&o=2
    "unknown token": "cT0x",  # q=1
    "not ascii": "cD3Csg",
}


@pytest.mark.parametrize(
    ("url", "cursor"),
    [
        pytest.param(url, cursor, id=f"{url}-{name}")
        for url in LISTS
        for name, cursor in CURSORS.items()
        # assets are ordered by name: any text is a position there
        if not (url == "/api/v1/models" and name == "position not a number")
    ],
)
def test_crafted_cursor_is_invalid_cursor(api, assets, url, cursor):
    problem(api.get(url, {"cursor": cursor}), 400, "invalid-cursor")


@pytest.mark.parametrize("url", ["/api/v1/models", "/api/v1/models/m/versions", "/api/v1/audit/events"])
def test_issued_cursors_still_page(api, url):
    """Three rows of each list; pages of two: the cursors the server issues are accepted both ways."""
    model = AssetFactory(kind=AssetKind.MODEL, name="m")
    VersionFactory.create_batch(3, asset=model)
    for number in range(3):
        api.post("/api/v1/models", {"name": f"x{number}"}, format="json")  # three assets and three events
    first = api.get(url, {"page_size": 2}).json()
    second = api.get(first["next"]).json()
    assert second["results"] and second["previous"]
    assert api.get(second["previous"]).json()["results"] == first["results"]


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/v1/audit/proof/inclusion?seq=²", "seq"),
        ("/api/v1/audit/proof/inclusion?seq=1&size=²", "size"),
        ("/api/v1/audit/proof/inclusion?seq=99999999999999999999999", "seq"),
        ("/api/v1/audit/proof/consistency?from=¹&to=2", "from"),
        ("/api/v1/audit/proof/consistency?from=1&to=٣", "to"),
        ("/api/v1/audit/events?since=²", "since"),
        ("/api/v1/audit/events?until=9999-12-31T23:59:59-12:00", "until"),
        ("/api/v1/audit/events?since=0001-01-01T00:00:00%2B14:00", "since"),
        ("/api/v1/audit/export?format=jsonl&since=9999-12-31T23:59:59-12:00", "since"),
        ("/api/v1/models/m/versions?created_after=9999-12-31T23:59:59-12:00", "created_after"),
        ("/api/v1/models/m/versions/1/lineage?depth=²", "depth"),
        ("/api/v1/models?page_size=²", "page_size"),
        ("/api/v1/models?page_size=0", "page_size"),
    ],
)
def test_bad_integer_or_time_query_parameter_is_400_naming_it(api, assets, url, parameter):
    problem(api.get(url), 400, "invalid-input", parameter)


def test_page_size_above_the_maximum_counts_as_the_maximum(api, assets):
    assert api.get("/api/v1/models?page_size=100000").status_code == 200


@pytest.mark.parametrize("query", ["after=²", "before=³", "after=" + "9" * 5000, "before=٣"])
def test_audit_page_ignores_a_page_key_that_is_not_ascii_digits(client, admin, query):
    client.raise_request_exception = False
    client.force_login(admin)
    assert client.get(f"/audit/?{query}").status_code == 200


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/models/m%00"),
        ("get", "/api/v1/models/m/versions/1/lineage%00"),
        ("get", "/api/v1/models/m/stages/staging%00"),
        ("delete", "/api/v1/models/m/permissions/user/root%00/view"),
        ("get", "/api/v1/promotions/1%00"),
    ],
)
def test_a_nul_in_the_path_names_nothing(api, assets, method, url):
    """PostgreSQL text cannot hold NUL: the lookup would fail instead of finding nothing."""
    before = state()
    problem(getattr(api, method)(url), 404, "not-found")
    assert state() == before


def test_a_nul_in_a_header_is_400_before_anything_reads_it(api, assets, client):
    before = state()
    problem(
        api.post("/api/v1/models", {"name": "n"}, format="json", HTTP_USER_AGENT="ci\x00"),
        400,
        "invalid-header",
    )
    problem(
        api.get(
            "/api/v1/models",
            HTTP_AUTHORIZATION="Bearer mgr_\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00_x",
        ),
        400,
        "invalid-header",
    )
    assert state() == before
    client.raise_request_exception = False
    assert client.get("/registry/", HTTP_USER_AGENT="\x00").status_code == 400


# OPTIONS --------------------------------------------------------------------------------------------------

PLACEHOLDERS = {
    "<str:name>": "m",
    "<int:number>": "1",
    "<str:stage>": "staging",
    "<int:pk>": "1",
    "<int:delivery>": "1",
    "<str:principal_type>": "user",
    "<str:principal>": "root",
    "<str:role>": "view",
    "<str:team>": "reviewers",
    "<str:user>": "root",
    "<str:username>": "root",
}


def options_urls():
    urls = []
    for pattern, _ in api_routes():
        url = "/" + pattern
        for placeholder, value in PLACEHOLDERS.items():
            url = url.replace(placeholder, value)
        assert "<" not in url, url
        urls.append(url)
    return urls


def test_options_covers_the_stage_route():
    assert "/api/v1/models/m/stages/staging" in options_urls()


@pytest.mark.parametrize("url", options_urls())
def test_options_answers_on_every_route(api, assets, url):
    response = api.options(url)
    assert response.status_code < 500, response.content
    if response.status_code == 200:
        assert response.json()["name"]
        assert "OPTIONS" in response["Allow"]


# Properties -----------------------------------------------------------------------------------------------

# The main writes, each with a body it accepts; the property replaces or nests one hostile value in it.
WRITES = {
    ("POST", "/api/v1/models/m/versions"): {"digest": digest_for("base"), "metadata": {"run": 1}},
    ("POST", "/api/v1/models/m/versions/1/evaluations"): {"name": "e", "metrics": {"auc": 0.9}},
    ("POST", "/api/v1/promotions"): PROMOTION,
    ("POST", "/api/v1/policies"): {"kind": "model", "stage": "staging", "gates": [METRIC_GATE]},
    ("PATCH", "/api/v1/models/m"): {"description": "changed"},
    ("PUT", "/api/v1/models/m/stages/staging"): {"version": 1},
}
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**53, -(2**53), 2**63, 2**64, MAX_SAFE_INT, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["\x00", "\ud800", "²", "\u0661", "\U0001d7d9", "", " "]),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
FIELDS = ["digest", "metrics", "params", "metadata", "name", "version", "gates", "details", "stage", "ci"]


def encode(value) -> str:
    """JSON text of value: non-finite floats as the tokens Python writes (NaN, Infinity), or as 1e999."""
    return json.dumps(value, allow_nan=True).replace("-Infinity", "-1e999", 1)


@st.composite
def hostile_bodies(draw, base: dict) -> str:
    shape = draw(st.sampled_from(["replace", "nest", "nest", "deep", "whole"]))
    if shape == "deep":
        levels = draw(st.integers(min_value=MAX_JSON_DEPTH - 2, max_value=MAX_JSON_DEPTH * 40))
        field = draw(st.sampled_from(sorted(base)))
        inner = '{"a":' * levels + "1" + "}" * levels
        return encode({**base, field: "@"}).replace('"@"', inner)
    if shape == "whole":
        return encode(draw(hostile_values))
    own = sorted(base)
    field = draw(st.sampled_from(own) | st.sampled_from(own) | st.sampled_from(FIELDS))
    value = draw(hostile_values)
    if shape == "nest":  # inside one of the body's objects (metadata, metrics, ci …), or a gate
        objects = [name for name in own if isinstance(base[name], dict) or name == "gates"] or own
        field = draw(st.sampled_from(objects))
        if field == "gates":
            value = [{**METRIC_GATE, draw(st.sampled_from(sorted(METRIC_GATE))): value}]
        elif isinstance(base[field], dict):
            value = {**base[field], draw(st.text(min_size=1, max_size=8)): value}
    return encode({**base, field: value})


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hostile_bodies_never_fail_the_server_and_refusals_change_nothing(api, assets, data):
    method, url = data.draw(st.sampled_from(sorted(WRITES)), label="write")
    body = data.draw(hostile_bodies(WRITES[(method, url)]), label="body")
    before = state()
    key = hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()
    response = send(api, method, url, body.encode("utf-8", "surrogatepass"), HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code < 500, (body[:300], response.content[:500])
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/problem+json"
        assert state() == before
