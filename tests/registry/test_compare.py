"""Comparison helpers: metric verdicts know which way is better; diffs show what changed."""

from registry.compare import dict_changes, line_diff, metric_rows


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
