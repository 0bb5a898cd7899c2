"""MLflow's filter grammar and page tokens (pure functions)."""

import pytest

from mlflow_api.errors import MlflowError
from mlflow_api.search import (
    Clause,
    like_regex,
    page_token_decode,
    page_token_encode,
    parse_filter,
    parse_order_by,
)


@pytest.mark.parametrize(
    ("text", "clauses"),
    [
        ("", []),
        ("name='churn'", [Clause("name", "=", "churn")]),
        ('name = "churn"', [Clause("name", "=", "churn")]),
        ("name LIKE 'ch%'", [Clause("name", "LIKE", "ch%")]),
        ("name ilike 'CH%'", [Clause("name", "ILIKE", "CH%")]),
        (
            "tags.`mlflow.prompt.is_prompt` = 'true' AND name != 'x'",
            [Clause("tags.mlflow.prompt.is_prompt", "=", "true"), Clause("name", "!=", "x")],
        ),
        ("tag.`mlflow.prompt.is_prompt` = 'true'", [Clause("tags.mlflow.prompt.is_prompt", "=", "true")]),
        ("version_number >= 2", [Clause("version_number", ">=", 2)]),
        ("run_id IN ('a', 'b')", [Clause("run_id", "IN", ("a", "b"))]),
        ("run_id NOT IN ('a')", [Clause("run_id", "NOT IN", ("a",))]),
        ("name = 'it\\'s'", [Clause("name", "=", "it's")]),
    ],
)
def test_filters_the_client_sends_are_parsed(text, clauses):
    assert parse_filter(text) == clauses


@pytest.mark.parametrize(
    "text",
    [
        "name",
        "name =",
        "= 'x'",
        "name = 'x' OR name = 'y'",
        "name = 'x' name = 'y'",
        "name IN 'x'",
        "name NOT LIKE 'x'",
        "name = 'unterminated",
        "name IN ('a' 'b')",
        "x" * 2001,
        "name = 'x' AND",
    ],
)
def test_malformed_filters_are_refused_naming_the_parameter(text):
    with pytest.raises(MlflowError) as refused:
        parse_filter(text)
    assert refused.value.code == "INVALID_PARAMETER_VALUE"
    assert refused.value.message.startswith("filter_string")


def test_like_patterns_become_anchored_regular_expressions():
    assert like_regex("ch%") == "^ch.*$"
    assert like_regex("a_b.c") == "^a.b\\.c$"


def test_order_by_and_page_tokens():
    [order] = parse_order_by(["name DESC"], {"name"})
    assert (order.key, order.descending) == ("name", True)
    with pytest.raises(MlflowError):
        parse_order_by(["name SIDEWAYS"], {"name"})
    assert page_token_decode(page_token_encode(40)) == 40
    assert page_token_decode(None) == 0
    for token in ("!!", "e30=", page_token_encode(-1), "eyJvZmZzZXQiOiB0cnVlfQ=="):
        with pytest.raises(MlflowError):
            page_token_decode(token)
