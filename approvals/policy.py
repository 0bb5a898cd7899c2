"""Pure rules of promotion: the state machine, gate checks, and the stricter-of-two-policies rule.

No database access here: everything is unit-tested with plain values.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from dataclasses import dataclass

from approvals.models import OPEN_STATUSES, Status

# Which state may follow which. Terminal states have no successors.
TRANSITIONS: dict[str, set[str]] = {
    Status.PENDING: {
        Status.APPROVED,
        Status.REJECTED,
        Status.CANCELLED,
        Status.SUPERSEDED,
        Status.EXPIRED,
        Status.FAILED,
    },
    Status.APPROVED: {Status.APPLIED, Status.CANCELLED, Status.SUPERSEDED, Status.EXPIRED, Status.FAILED},
    Status.APPLIED: set(),
    Status.REJECTED: set(),
    Status.CANCELLED: set(),
    Status.SUPERSEDED: set(),
    Status.EXPIRED: set(),
    Status.FAILED: set(),
}
FINAL = {status for status, successors in TRANSITIONS.items() if not successors}


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS[current]


def is_due(status: str, expires_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether an open request's time has run out: it is expired by the clock, recorded or not."""
    return status in OPEN_STATUSES and expires_at <= now


def expiry_reason(expires_at: dt.datetime) -> str:
    """The status_reason of an expired request."""
    return f"no decision before {expires_at.isoformat()}"


OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq}
METRIC_SOURCES = ("latest_evaluation", "version", "any")
STAGE_WHEN = ("current", "ever")


class GateSpecError(ValueError):
    """A gate definition is malformed; `field` names the offending member."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def validate_gates(gates) -> list[dict]:
    """Check and normalise gate definitions (raises GateSpecError naming gates[i].member)."""
    if not isinstance(gates, list):
        raise GateSpecError("gates", "must be a list")
    normalised = []
    for index, gate in enumerate(gates):
        where = f"gates[{index}]"
        if not isinstance(gate, dict):
            raise GateSpecError(where, "must be an object")
        kind = gate.get("type")
        if kind == "metric":
            metric, op, value = gate.get("metric"), gate.get("op"), gate.get("value")
            source = gate.get("source", "any")
            if not isinstance(metric, str) or not metric:
                raise GateSpecError(f"{where}.metric", "must name a metric")
            if not isinstance(op, str) or op not in OPERATORS:  # a list or object is not a key
                raise GateSpecError(f"{where}.op", f"must be one of {' '.join(OPERATORS)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise GateSpecError(f"{where}.value", "must be a finite number")
            if source not in METRIC_SOURCES:
                raise GateSpecError(f"{where}.source", f"must be one of {', '.join(METRIC_SOURCES)}")
            normalised.append(
                {"type": "metric", "metric": metric, "op": op, "value": value, "source": source}
            )
        elif kind == "model_card":
            normalised.append({"type": "model_card"})
        elif kind == "digest":
            normalised.append({"type": "digest"})
        elif kind == "previous_stage":
            stage, when = gate.get("stage"), gate.get("when", "ever")
            if not isinstance(stage, str) or not stage:
                raise GateSpecError(f"{where}.stage", "must name a stage")
            if when not in STAGE_WHEN:
                raise GateSpecError(f"{where}.when", "must be 'current' or 'ever'")
            normalised.append({"type": "previous_stage", "stage": stage, "when": when})
        else:
            raise GateSpecError(
                f"{where}.type", "must be 'metric', 'model_card', 'digest' or 'previous_stage'"
            )
    return normalised


@dataclass(frozen=True)
class Facts:
    """What the gates look at, gathered from the database by the caller."""

    version_metrics: dict
    evaluation_metrics: dict  # the latest evaluation's metrics, {} when there is none
    model_card: str
    current_stages: frozenset[str]
    past_stages: frozenset[str]  # every stage the version has ever been put in, current ones included
    digest_given: bool = True  # False for a version registered without a digest (the MLflow API)


@dataclass(frozen=True)
class GateResult:
    gate: dict
    passed: bool
    actual: object
    message: str

    def as_dict(self) -> dict:
        return {"gate": self.gate, "passed": self.passed, "actual": self.actual, "message": self.message}


def describe(gate: dict) -> str:
    if gate["type"] == "metric":
        return f"{gate['metric']} {gate['op']} {gate['value']} ({gate['source'].replace('_', ' ')})"
    if gate["type"] == "model_card":
        return "model card is not empty"
    if gate["type"] == "digest":
        return "digest is given"
    return f"{'is' if gate['when'] == 'current' else 'is or has been'} in {gate['stage']}"


def describe_policy(
    *,
    scope: str,
    stage: str,
    required_approvals: int,
    reviewer_teams: list[str],
    allow_author_approval: bool,
    gates: list[dict],
    expiry_hours: int,
    apply_on_approval: bool,
) -> list[str]:
    """A policy in sentences, for people: who must approve, what the version must pass, what happens next."""
    approvals = "one approval" if required_approvals == 1 else f"{required_approvals} approvals"
    who = (
        f"members of {', '.join(reviewer_teams)} who hold review on the asset"
        if reviewer_teams
        else "people who hold review on the asset"
    )
    lines = [
        f"Promoting {scope} into {stage} needs {approvals} from {who}.",
        "The requester never approves their own request; "
        + (
            "the version's author may approve it."
            if allow_author_approval
            else "nor does the person who registered the version."
        ),
    ]
    if gates:
        lines.append("The version must pass: " + "; ".join(describe(gate) for gate in gates) + ".")
    else:
        lines.append("There are no gates: any version may be requested.")
    days, hours = divmod(expiry_hours, 24)
    span = " and ".join(
        part
        for part in (
            f"{days} day{'s' if days != 1 else ''}" if days else "",
            f"{hours} hour{'s' if hours != 1 else ''}" if hours else "",
        )
        if part
    )
    lines.append(f"A request without a decision expires after {span}.")
    lines.append(
        "Once approved, the version moves into the stage at once."
        if apply_on_approval
        else "Once approved, someone must apply the promotion to move the version."
    )
    return lines


def evaluate(gates: list[dict], facts: Facts) -> list[GateResult]:
    results = []
    for gate in gates:
        if gate["type"] == "metric":
            name = gate["metric"]
            if gate["source"] == "version":
                actual = facts.version_metrics.get(name)
            elif gate["source"] == "latest_evaluation":
                actual = facts.evaluation_metrics.get(name)
            else:
                actual = facts.evaluation_metrics.get(name, facts.version_metrics.get(name))
            passed = isinstance(actual, int | float) and OPERATORS[gate["op"]](actual, gate["value"])
            message = describe(gate) + ("" if actual is not None else f": no value for {name}")
        elif gate["type"] == "model_card":
            actual = len(facts.model_card.strip())
            passed, message = actual > 0, describe(gate)
        elif gate["type"] == "digest":
            actual = facts.digest_given
            passed = actual
            message = describe(gate) + ("" if actual else ": the version was registered without a digest")
        else:
            stages = facts.current_stages if gate["when"] == "current" else facts.past_stages
            actual = sorted(stages)
            passed, message = gate["stage"] in stages, describe(gate)
        results.append(GateResult(gate=gate, passed=passed, actual=actual, message=message))
    return results


def snapshot(policy) -> dict:
    """The parts of a policy that decide a request, as plain values."""
    return {
        "policy_id": policy.pk,
        "required_approvals": policy.required_approvals,
        "reviewer_teams": sorted(team.pk for team in policy.reviewer_teams.all()),
        "allow_author_approval": policy.allow_author_approval,
        "gates": policy.gates,
        "apply_on_approval": policy.apply_on_approval,
    }


def stricter(first: dict, second: dict | None) -> dict:
    """The requirements of two policy snapshots combined so that neither is weakened."""
    if second is None:
        return first
    teams_a, teams_b = set(first["reviewer_teams"]), set(second["reviewer_teams"])
    if teams_a and teams_b:
        teams = teams_a & teams_b
        # Two disjoint team lists leave nobody eligible: that is the strict answer, and it is honest.
        teams = teams or {-1}
    else:
        teams = teams_a or teams_b
    gates = list(first["gates"])
    gates += [gate for gate in second["gates"] if gate not in gates]
    return {
        "policy_id": second["policy_id"],
        "required_approvals": max(first["required_approvals"], second["required_approvals"]),
        "reviewer_teams": sorted(teams),
        "allow_author_approval": first["allow_author_approval"] and second["allow_author_approval"],
        "gates": gates,
        "apply_on_approval": first["apply_on_approval"] and second["apply_on_approval"],
    }
