"""The registry's assets and versions in MLflow's JSON shapes (shape only, no database access).

Versions are strings, times are epoch milliseconds, tags are lists of {"key", "value"}. A registry tag
"key=value" is the MLflow tag (key, value); the version's digest is the tag `digest`; a prompt carries the
tags the MLflow client reads a prompt from (`mlflow.prompt.is_prompt`, `mlflow.prompt.text`, …).
"""

from __future__ import annotations

import json

from registry.models import Asset, AssetKind, AssetVersion

IS_PROMPT = "mlflow.prompt.is_prompt"
PROMPT_TEXT = "mlflow.prompt.text"
PROMPT_TYPE = "_mlflow_prompt_type"
PROMPT_RESPONSE_FORMAT = "_mlflow_prompt_response_format"
PROMPT_MODEL_CONFIG = "_mlflow_prompt_model_config"
DIGEST_TAG = "digest"
# The legacy stages MLflow's client knows; any other registry stage keeps its own name.
LEGACY_STAGES = {"staging": "Staging", "production": "Production"}


def millis(moment) -> int:
    return int(moment.timestamp() * 1000)


def tag_text(key: str, value: str) -> str:
    """An MLflow tag as a registry tag."""
    return f"{key}={value}" if value != "" else key


def tag_pair(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key, value


def tags_out(tags: list[str]) -> list[dict]:
    return [{"key": key, "value": value} for key, value in map(tag_pair, tags)]


def registered_model(
    asset: Asset, *, aliases: list[tuple[str, int]] = (), latest: AssetVersion | None = None
) -> dict:
    tags = tags_out(asset.tags)
    if asset.kind == AssetKind.PROMPT:
        tags.insert(0, {"key": IS_PROMPT, "value": "true"})
    data = {
        "name": asset.name,
        "creation_timestamp": millis(asset.created_at),
        "last_updated_timestamp": millis(asset.updated_at),
        "description": asset.description,
        "tags": tags,
        "aliases": [{"alias": stage, "version": str(number)} for stage, number in aliases],
    }
    if latest is not None:
        data["latest_versions"] = [model_version(latest, asset=asset)]
    return data


def current_stage(stages: list[str]) -> str:
    for stage in ("production", "staging"):
        if stage in stages:
            return LEGACY_STAGES[stage]
    return stages[0] if stages else "None"


def model_version(version: AssetVersion, *, asset: Asset, stages: list[str] = ()) -> dict:
    origin = version.origin or {}
    tags = tags_out(version.tags)
    if asset.kind == AssetKind.PROMPT:
        metadata = version.metadata or {}
        tags[:0] = [
            {"key": IS_PROMPT, "value": "true"},
            {"key": PROMPT_TEXT, "value": version.template},
            {"key": PROMPT_TYPE, "value": metadata.get("mlflow_prompt_type", "text")},
        ]
        if "mlflow_response_format" in metadata:
            tags.append(
                {"key": PROMPT_RESPONSE_FORMAT, "value": json.dumps(metadata["mlflow_response_format"])}
            )
        if version.model_config:
            tags.append({"key": PROMPT_MODEL_CONFIG, "value": json.dumps(version.model_config)})
    tags.append({"key": DIGEST_TAG, "value": version.digest})
    description = version.commit_message if asset.kind == AssetKind.PROMPT else version.description
    return {
        "name": asset.name,
        "version": str(version.number),
        "creation_timestamp": millis(version.created_at),
        "last_updated_timestamp": millis(version.created_at),
        "user_id": version.created_by.username if version.created_by_id else "",
        "current_stage": current_stage(list(stages)),
        "description": description or version.description,
        "source": version.uri,
        "run_id": origin.get("mlflow_run_id", ""),
        "run_link": origin.get("run_url", ""),
        "model_id": origin.get("mlflow_model_id", ""),
        "status": "READY",
        "tags": tags,
        "aliases": list(stages),
    }
