"""Side-by-side comparison of two versions: metric deltas, parameter and configuration diffs, text diffs.

Pure functions over plain values, shared by the promotion page and the compare page.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

# Metrics where a smaller value is better; every other metric is taken as higher-is-better.
LOWER_IS_BETTER = (
    "loss",
    "error",
    "latency",
    "mae",
    "mse",
    "rmse",
    "mape",
    "perplexity",
    "fpr",
    "fnr",
    "cost",
)


def lower_is_better(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in LOWER_IS_BETTER)


@dataclass(frozen=True)
class MetricRow:
    name: str
    candidate: float | None
    current: float | None
    delta: float | None
    verdict: str  # "better", "worse", "same", "new", "gone"


def metric_rows(candidate: dict, current: dict | None) -> list[MetricRow]:
    current = current or {}
    rows = []
    for name in sorted(set(candidate) | set(current)):
        new, old = candidate.get(name), current.get(name)
        if old is None:
            rows.append(MetricRow(name, new, None, None, "new"))
        elif new is None:
            rows.append(MetricRow(name, None, old, None, "gone"))
        else:
            delta = new - old
            if delta == 0:
                verdict = "same"
            else:
                improved = delta < 0 if lower_is_better(name) else delta > 0
                verdict = "better" if improved else "worse"
            rows.append(MetricRow(name, new, old, delta, verdict))
    return rows


@dataclass(frozen=True)
class FieldChange:
    key: str
    candidate: str | None
    current: str | None
    change: str  # "added", "removed", "changed", "same"


def _show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def dict_changes(candidate: dict, current: dict | None, *, include_same: bool = False) -> list[FieldChange]:
    current = current or {}
    changes = []
    for key in sorted(set(candidate) | set(current)):
        if key not in current:
            changes.append(FieldChange(key, _show(candidate[key]), None, "added"))
        elif key not in candidate:
            changes.append(FieldChange(key, None, _show(current[key]), "removed"))
        elif candidate[key] != current[key]:
            changes.append(FieldChange(key, _show(candidate[key]), _show(current[key]), "changed"))
        elif include_same:
            changes.append(FieldChange(key, _show(candidate[key]), _show(current[key]), "same"))
    return changes


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "remove", "context", "hunk"
    text: str


def line_diff(candidate: str, current: str | None, *, context: int = 3) -> list[DiffLine]:
    """A unified diff from the current text to the candidate's, as typed lines for the template."""
    lines = []
    diff = difflib.unified_diff(
        (current or "").splitlines(),
        (candidate or "").splitlines(),
        "current",
        "candidate",
        lineterm="",
        n=context,
    )
    for line in diff:
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            lines.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            lines.append(DiffLine("add", line[1:]))
        elif line.startswith("-"):
            lines.append(DiffLine("remove", line[1:]))
        else:
            lines.append(DiffLine("context", line[1:]))
    return lines
