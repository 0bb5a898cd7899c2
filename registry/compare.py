"""Side-by-side comparison of two versions: metric deltas, parameter and configuration diffs, text diffs.

Pure functions over plain values, shared by the promotion page and the compare page, and the presenter that
shapes a comparison of two versions for both (`version_comparison`).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from core.web import format_number
from registry import content

# Which way is better, by the metric's name (a part of it): smaller for these ...
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
    "drift",
)
# ... larger for these; a metric named by neither has no known direction, and its change is shown as a
# change only ("changed"), never guessed better or worse.
HIGHER_IS_BETTER = (
    "auc",
    "accuracy",
    "acc",
    "precision",
    "recall",
    "f1",
    "fbeta",
    "ap",
    "map",
    "ndcg",
    "mrr",
    "r2",
    "bleu",
    "rouge",
    "meteor",
    "exact_match",
    "pass_rate",
    "win_rate",
    "hit_rate",
    "throughput",
    "coverage",
    "specificity",
    "sensitivity",
    "tpr",
    "tnr",
    "kappa",
    "iou",
    "dice",
)
LOWER, HIGHER = "lower", "higher"


def _parts(name: str) -> list[str]:
    return [part for part in name.lower().replace("-", "_").replace("@", "_").split("_") if part]


def better_direction(name: str, known: dict[str, str] | None = None) -> str | None:
    """Which way is better for a metric: "lower", "higher", or None when not known.

    `known` (metric → direction, e.g. from a policy's gates: `auc >= 0.9` says higher is better) wins; then
    the name: the lower-is-better list by substring ("val_loss", "latency_ms"), the higher-is-better list by
    whole word ("pr_auc", "f1_macro"; "map" in "heatmap_x" does not count)."""
    if known and name in known:
        return known[name]
    lowered = name.lower()
    if any(part in lowered for part in LOWER_IS_BETTER):
        return LOWER
    if any(part in HIGHER_IS_BETTER for part in _parts(name)):
        return HIGHER
    return None


def lower_is_better(name: str) -> bool:
    return better_direction(name) == LOWER


@dataclass(frozen=True)
class MetricRow:
    name: str
    candidate: float | None
    current: float | None
    delta: float | None
    verdict: str  # "better", "worse", "changed" (no known direction), "same", "new", "gone"
    direction: str | None = None  # which way is better: "lower", "higher", or None (not known)


def metric_rows(
    candidate: dict, current: dict | None, *, directions: dict[str, str] | None = None
) -> list[MetricRow]:
    current = current or {}
    rows = []
    for name in sorted(set(candidate) | set(current)):
        new, old = candidate.get(name), current.get(name)
        direction = better_direction(name, directions)
        if old is None:
            rows.append(MetricRow(name, new, None, None, "new", direction))
        elif new is None:
            rows.append(MetricRow(name, None, old, None, "gone", direction))
        elif not _is_number(new) or not _is_number(old):
            verdict = "same" if new == old else "changed"
            rows.append(MetricRow(name, new, old, None, verdict, direction))
        else:
            delta = new - old
            if delta == 0:
                verdict = "same"
            elif direction is None:
                verdict = "changed"
            else:
                improved = delta < 0 if direction == LOWER else delta > 0
                verdict = "better" if improved else "worse"
            rows.append(MetricRow(name, new, old, delta, verdict, direction))
    return rows


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def gate_directions(gates: list[dict]) -> dict[str, str]:
    """What a policy's metric gates say about direction: `auc >= 0.9` means higher is better for auc."""
    directions = {}
    for gate in gates:
        if gate.get("type") == "metric" and gate.get("op") in (">=", ">", "<=", "<"):
            directions[gate["metric"]] = HIGHER if gate["op"].startswith(">") else LOWER
    return directions


@dataclass(frozen=True)
class FieldChange:
    key: str
    candidate: str | None
    current: str | None
    change: str  # "added", "removed", "changed", "same"


def show_value(value) -> str:
    """A stored value in one line: text as it is, anything else as sorted JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def dict_changes(candidate: dict, current: dict | None, *, include_same: bool = False) -> list[FieldChange]:
    current = current or {}
    changes = []
    for key in sorted(set(candidate) | set(current)):
        if key not in current:
            changes.append(FieldChange(key, show_value(candidate[key]), None, "added"))
        elif key not in candidate:
            changes.append(FieldChange(key, None, show_value(current[key]), "removed"))
        elif candidate[key] != current[key]:
            changes.append(FieldChange(key, show_value(candidate[key]), show_value(current[key]), "changed"))
        elif include_same:
            changes.append(FieldChange(key, show_value(candidate[key]), show_value(current[key]), "same"))
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


# Presenting a comparison: the one shape the compare page and the promotion page both render, through the
# one template partial registry/_comparison.html.

# A delta's direction in text (▲ up, ▼ down) and its verdict in words: colour is never the only signal.
VERDICT_WORDS = {
    "better": "better",
    "worse": "worse",
    "changed": "changed",
    "same": "no change",
    "new": "new",
    "gone": "removed",
}
DIRECTION_WORDS = {LOWER: "lower is better", HIGHER: "higher is better", None: "no known better direction"}


def metric_view(row: MetricRow) -> dict:
    """One metric row for display: both values, the signed delta, its direction and the verdict in words."""
    arrow = ""
    if row.delta:
        arrow = "▲" if row.delta > 0 else "▼"
    delta = f"{row.delta:+.4g}" if isinstance(row.delta, float) else (f"{row.delta:+d}" if row.delta else "")
    return {
        "name": row.name,
        "current": format_number(row.current),
        "candidate": format_number(row.candidate),
        "delta": "" if row.verdict == "same" else delta,
        "arrow": arrow,
        "verdict": row.verdict,
        "word": VERDICT_WORDS[row.verdict],
        "direction": DIRECTION_WORDS[row.direction],
    }


@dataclass(frozen=True)
class Section:
    """A compared dictionary (rows of FieldChange) or text (rows of DiffLine), with its element id."""

    id: str
    title: str
    rows: list
    text: bool = False


# What is compared per kind beyond the metrics: (key, title, attribute, is text).
SECTIONS = {
    "model": [
        ("params", "Parameters", "params", False),
        ("signature", "Signature", "signature", False),
        ("model_card", "Model card", "model_card", True),
    ],
    "prompt": [
        ("config", "Model configuration", "model_config", False),
        ("template", "Template", "template", True),
    ],
    "dataset": [("schema", "Schema", "schema", False)],
}
COMMON_SECTIONS = [("metadata", "Metadata", "metadata", False)]


def version_comparison(kind: str, candidate, current, *, directions: dict[str, str] | None = None) -> dict:
    """What changes from current (a version, or None when there is nothing to compare with) to candidate.

    directions (metric → "lower"/"higher") overrides what the metric names say (gate_directions)."""

    def old(attribute: str):
        return getattr(current, attribute) if current is not None else None

    kind = str(kind)  # an AssetKind member hashes by its name, not its value
    sections = {}
    for key, title, attribute, text in [*SECTIONS.get(kind, []), *COMMON_SECTIONS]:
        new = getattr(candidate, attribute)
        rows = line_diff(new, old(attribute)) if text else dict_changes(new or {}, old(attribute) or {})
        sections[key] = Section(f"{key.replace('_', '-')}-diff", title, rows, text)
    return {
        "metrics": [
            metric_view(row)
            for row in metric_rows(candidate.metrics or {}, old("metrics"), directions=directions)
        ],
        "digest_changed": current is None
        or current.digest != candidate.digest
        or candidate.digest == content.DIGEST_NOT_GIVEN,
        # A version registered without a digest (the MLflow API) cannot be said to hold the same artefact.
        "digest_given": content.DIGEST_NOT_GIVEN
        not in (candidate.digest, current.digest if current is not None else None),
        "fields": [
            {"name": name, "current": a or "—", "candidate": b or "—", "changed": a != b}
            for name, a, b in _fields(kind, candidate, current)
        ],
        "sections": sections,
    }


def _fields(kind: str, candidate, current) -> list[tuple[str, str, str]]:
    """The one-value facts side by side: (name, current, candidate)."""
    if current is None:
        return []
    fields = [("Digest", current.digest, candidate.digest), ("URI", current.uri, candidate.uri)]
    if kind == "model":
        fields.append(("Framework", current.framework, candidate.framework))
    elif kind == "prompt":
        fields.append(("Variables", ", ".join(current.variables), ", ".join(candidate.variables)))
        fields.append(("Commit message", current.commit_message, candidate.commit_message))
    else:
        fields.append(("Rows", show_value(current.row_count), show_value(candidate.row_count)))
    return fields
