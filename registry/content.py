"""Pure rules for version content: digests, prompt templates, metrics. No database access."""

from __future__ import annotations

import hashlib
import math
import re

import rfc8785

from core.exceptions import InvalidInput

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# What a version registered without a digest (through the MLflow API, which sends none) stores and shows in
# place of one; the policy gate {"type": "digest"} refuses to promote such a version.
DIGEST_NOT_GIVEN = "digest not given"
# {{ name }}: a placeholder; the name is an identifier. Anything else between braces is an error.
PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BRACES_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
METRIC_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/@-]{1,100}$")


def validate_digest(value: str, *, field: str = "digest") -> str:
    if not isinstance(value, str) or not DIGEST_RE.match(value):
        raise InvalidInput.field(field, "must be 'sha256:' followed by 64 lowercase hex digits")
    return value


def template_variables(template: str, *, field: str = "template") -> list[str]:
    """The input variables of a prompt template, in order of first use; malformed placeholders fail."""
    for match in BRACES_RE.finditer(template):
        if not PLACEHOLDER_RE.fullmatch(match.group(0)):
            raise InvalidInput.field(
                field, f"placeholder {match.group(0)!r} is not '{{{{name}}}}' with an identifier"
            )
    leftover = BRACES_RE.sub("", template)
    if "{{" in leftover or "}}" in leftover:
        raise InvalidInput.field(field, "has an unbalanced '{{' or '}}'")
    seen: dict[str, None] = {}
    for name in PLACEHOLDER_RE.findall(template):
        seen.setdefault(name, None)
    return list(seen)


def prompt_digest(*, template: str, model_config: dict) -> str:
    """sha256 over the RFC 8785 canonical JSON of the prompt's content (documented in docs/api.md)."""
    canonical = rfc8785.dumps({"model_config": model_config, "template": template})
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def validate_metrics(metrics: dict, *, field: str = "metrics") -> dict:
    if not isinstance(metrics, dict):
        raise InvalidInput.field(field, "must be an object of metric name to number")
    for name, value in metrics.items():
        if not METRIC_NAME_RE.match(name):
            raise InvalidInput.field(f"{field}.{name}", "metric names are 1-100 letters, digits or _.:/@-")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput.field(f"{field}.{name}", "must be a finite number")
    return metrics


def validate_tags(tags: list, *, field: str = "tags") -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidInput.field(field, "must be a list of strings")
    cleaned = []
    for tag in tags:
        tag = tag.strip()
        if not tag or len(tag) > 50:
            raise InvalidInput.field(field, "each tag is 1-50 characters")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > 50:
        raise InvalidInput.field(field, "at most 50 tags")
    return cleaned
