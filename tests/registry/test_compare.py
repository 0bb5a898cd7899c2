"""Comparison helpers: metric verdicts know which way is better; diffs show what changed."""

from types import SimpleNamespace

from registry.compare import dict_changes, line_diff, metric_rows, version_comparison
from registry.content import DIGEST_NOT_GIVEN


def test_metric_verdicts():
    rows = {
        row.name: row
        for row in metric_rows(
            {"auc": 0.93, "latency_ms": 50, "f1": 0.7, "new_one": 1},
            {"auc": 0.91, "latency_ms": 40, "f1": 0.7, "old": 2},
        )
    }
    assert rows["auc"].verdict == "better" and round(rows["auc"].delta, 2) == 0.02
    assert rows["latency_ms"].verdict == "worse"  # lower is better for latency
    assert rows["f1"].verdict == "same"
    assert rows["new_one"].verdict == "new" and rows["old"].verdict == "gone"
    assert [row.verdict for row in metric_rows({"auc": 0.9}, None)] == ["new"]


def test_dict_changes():
    changes = {
        c.key: c.change
        for c in dict_changes({"a": 1, "b": {"x": 1}, "c": 3}, {"a": 1, "b": {"x": 2}, "d": 4})
    }
    assert changes == {"b": "changed", "c": "added", "d": "removed"}


def test_line_diff():
    lines = line_diff("Hello {{name}}\nBye", "Hello {{user}}\nBye")
    assert [(line.kind, line.text) for line in lines if line.kind in ("add", "remove")] == [
        ("remove", "Hello {{user}}"),
        ("add", "Hello {{name}}"),
    ]
    assert line_diff("same", "same") == []


def test_one_comparison_for_both_pages():
    def version(**fields):
        base = {"metrics": {}, "digest": "sha256:a", "uri": "s3://m", "framework": "xgboost", "metadata": {}}
        return SimpleNamespace(**{**base, "params": {}, "signature": {}, "model_card": "", **fields})

    current = version(metrics={"auc": 0.9, "f1": 0.5}, params={"depth": 3})
    candidate = version(metrics={"auc": 0.9, "f1": 0.6}, params={"depth": 4}, digest="sha256:b")
    shown = version_comparison("model", candidate, current)
    assert list(shown["sections"]) == ["params", "signature", "model_card", "metadata"]
    assert [change.change for change in shown["sections"]["params"].rows] == ["changed"]
    words = {row["name"]: (row["word"], row["arrow"], row["delta"]) for row in shown["metrics"]}
    assert words == {"auc": ("no change", "", ""), "f1": ("better", "▲", "+0.1")}
    assert shown["digest_changed"] and shown["fields"][0] == {
        "name": "Digest",
        "current": "sha256:a",
        "candidate": "sha256:b",
        "changed": True,
    }
    # Nothing in the stage yet: everything is new, and there are no facts to set side by side.
    alone = version_comparison("model", candidate, None)
    assert [row["word"] for row in alone["metrics"]] == ["new", "new"] and alone["fields"] == []


def test_better_and_worse_only_where_the_direction_is_known():
    from registry.compare import better_direction, gate_directions

    assert better_direction("val_loss") == "lower" and better_direction("p99_latency_ms") == "lower"
    assert better_direction("pr_auc") == "higher" and better_direction("f1_macro") == "higher"
    assert better_direction("heatmap_width") is None  # "map" only as a whole word
    assert better_direction("ks") is None
    rows = {row.name: row for row in metric_rows({"ks": 0.35, "auc": 0.9}, {"ks": 0.4, "auc": 0.91})}
    assert rows["ks"].verdict == "changed" and rows["ks"].direction is None
    assert rows["auc"].verdict == "worse"
    # A gate says which way is better, and wins over the name.
    directions = gate_directions(
        [
            {"type": "metric", "metric": "ks", "op": "<=", "value": 0.5},
            {"type": "metric", "metric": "auc", "op": "==", "value": 1},
            {"type": "model_card"},
        ]
    )
    assert directions == {"ks": "lower"}
    assert metric_rows({"ks": 0.35}, {"ks": 0.4}, directions=directions)[0].verdict == "better"


def test_two_versions_without_digest_are_never_called_the_same_artefact():
    def version(**fields):
        base = {"metrics": {}, "digest": DIGEST_NOT_GIVEN, "uri": "s3://m", "framework": "", "metadata": {}}
        return SimpleNamespace(**{**base, "params": {}, "signature": {}, "model_card": "", **fields})

    shown = version_comparison("model", version(), version())
    assert shown["digest_changed"] and not shown["digest_given"]
    same = version(digest="sha256:a")
    shown = version_comparison("model", same, same)
    assert not shown["digest_changed"] and shown["digest_given"]
