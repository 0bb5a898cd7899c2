"""The pure rules: the state machine, gates, and the stricter-of-two-policies rule (no database)."""

import pytest

from approvals import policy as rules
from approvals.models import Status


def test_terminal_states_have_no_successors():
    assert {
        Status.APPLIED,
        Status.REJECTED,
        Status.CANCELLED,
        Status.SUPERSEDED,
        Status.EXPIRED,
        Status.FAILED,
    } == rules.FINAL
    for final in rules.FINAL:
        for target in Status:
            assert not rules.can_transition(final, target)


def test_pending_and_approved_successors():
    assert rules.can_transition(Status.PENDING, Status.APPROVED)
    assert not rules.can_transition(Status.PENDING, Status.APPLIED)  # only through approved
    assert rules.can_transition(Status.APPROVED, Status.APPLIED)
    assert not rules.can_transition(Status.APPROVED, Status.REJECTED)
    assert not rules.can_transition(Status.APPROVED, Status.PENDING)


FACTS = rules.Facts(
    version_metrics={"auc": 0.93, "latency_ms": 40},
    evaluation_metrics={"auc": 0.91},
    model_card="# Card",
    current_stages=frozenset({"staging"}),
    past_stages=frozenset({"staging", "canary"}),
)


@pytest.mark.parametrize(
    ("gate", "passed", "actual"),
    [
        (
            {"type": "metric", "metric": "auc", "op": ">=", "value": 0.92},
            False,
            0.91,
        ),  # latest evaluation wins
        ({"type": "metric", "metric": "auc", "op": ">=", "value": 0.92, "source": "version"}, True, 0.93),
        (
            {"type": "metric", "metric": "latency_ms", "op": "<", "value": 50},
            True,
            40,
        ),  # falls back to version
        ({"type": "metric", "metric": "f1", "op": ">", "value": 0}, False, None),
        ({"type": "model_card"}, True, 6),
        ({"type": "digest"}, True, True),
        ({"type": "previous_stage", "stage": "staging", "when": "current"}, True, ["staging"]),
        ({"type": "previous_stage", "stage": "canary", "when": "current"}, False, ["staging"]),
        ({"type": "previous_stage", "stage": "canary"}, True, ["canary", "staging"]),
    ],
)
def test_gates(gate, passed, actual):
    [result] = rules.evaluate(rules.validate_gates([gate]), FACTS)
    assert (result.passed, result.actual) == (passed, actual)


def test_the_digest_gate_refuses_a_version_registered_without_a_digest():
    facts = rules.Facts(**{**FACTS.__dict__, "digest_given": False})
    [result] = rules.evaluate(rules.validate_gates([{"type": "digest"}]), facts)
    assert (result.passed, result.actual) == (False, False)
    assert result.message == "digest is given: the version was registered without a digest"


@pytest.mark.parametrize(
    ("gates", "field"),
    [
        ("x", "gates"),
        ([{"type": "vibes"}], "gates[0].type"),
        ([{"type": "metric", "metric": "auc", "op": "~", "value": 1}], "gates[0].op"),
        ([{"type": "metric", "metric": "auc", "op": ">=", "value": "high"}], "gates[0].value"),
        ([{"type": "model_card"}, {"type": "metric", "op": ">=", "value": 1}], "gates[1].metric"),
        ([{"type": "previous_stage", "stage": "staging", "when": "someday"}], "gates[0].when"),
    ],
)
def test_gate_validation_names_the_field(gates, field):
    with pytest.raises(rules.GateSpecError) as excinfo:
        rules.validate_gates(gates)
    assert excinfo.value.field == field


def snap(**overrides):
    base = {
        "policy_id": 1,
        "required_approvals": 2,
        "reviewer_teams": [],
        "allow_author_approval": False,
        "gates": [],
        "apply_on_approval": True,
    }
    return {**base, **overrides}


def test_stricter_never_weakens():
    assert rules.stricter(snap(), snap(required_approvals=1))["required_approvals"] == 2
    assert rules.stricter(snap(), snap(required_approvals=3))["required_approvals"] == 3
    assert rules.stricter(snap(allow_author_approval=True), snap())["allow_author_approval"] is False
    gate = {"type": "model_card"}
    assert rules.stricter(snap(gates=[gate]), snap())["gates"] == [gate]
    assert rules.stricter(snap(reviewer_teams=[1, 2]), snap(reviewer_teams=[2, 3]))["reviewer_teams"] == [2]
    assert rules.stricter(snap(reviewer_teams=[1]), snap(reviewer_teams=[]))["reviewer_teams"] == [1]
    assert rules.stricter(snap(reviewer_teams=[1]), snap(reviewer_teams=[2]))["reviewer_teams"] == [-1]
    assert rules.stricter(snap(), None) == snap()


def test_a_policy_in_words():
    words = rules.describe_policy(
        scope="model/fraud",
        stage="production",
        required_approvals=2,
        reviewer_teams=["risk", "ml"],
        allow_author_approval=True,
        gates=[
            {"type": "metric", "metric": "auc", "op": ">=", "value": 0.9, "source": "latest_evaluation"},
            {"type": "model_card"},
            {"type": "previous_stage", "stage": "staging", "when": "ever"},
        ],
        expiry_hours=49,
        apply_on_approval=False,
    )
    assert words == [
        "Promoting model/fraud into production needs 2 approvals from members of risk, ml who hold review on "
        "the asset.",
        "The requester never approves their own request; the version's author may approve it.",
        "The version must pass: auc >= 0.9 (latest evaluation); model card is not empty; is or has been in "
        "staging.",
        "A request without a decision expires after 2 days and 1 hour.",
        "Once approved, someone must apply the promotion to move the version.",
    ]
    short = rules.describe_policy(
        scope="every asset",
        stage="staging",
        required_approvals=1,
        reviewer_teams=[],
        allow_author_approval=False,
        gates=[],
        expiry_hours=24,
        apply_on_approval=True,
    )
    assert (
        short[0]
        == "Promoting every asset into staging needs one approval from people who hold review on the asset."
    )
    assert short[2:] == [
        "There are no gates: any version may be requested.",
        "A request without a decision expires after 1 day.",
        "Once approved, the version moves into the stage at once.",
    ]
