"""The MLflow REST API's model registry (2.0), served through the registry's services and selectors.

One route table maps MLflow's (path, method) pairs to handlers. Each handler reads its arguments (the query
string for GET, the JSON body otherwise), finds the asset as the caller may see it (an asset the caller cannot
see answers exactly like a missing one: RESOURCE_DOES_NOT_EXIST), and calls the registry's services, which
check roles, write the audit event (channel `mlflow`) and keep the promotion rules. Errors answer in MLflow's
shape ({"error_code", "message"}) with its statuses.

MLflow names models and prompts in one namespace; here they are the registry's model and prompt assets (a
prompt is a registered model with the tag `mlflow.prompt.is_prompt = true`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import SimpleNamespace

from django.contrib.auth.models import Group
from django.db.models import Q
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Scope, User
from accounts.permissions import reads_everything
from core.compiled import CompiledQuery
from core.exceptions import Conflict, DomainError
from core.source import Channel, Source
from mlflow_api import present, search
from mlflow_api.errors import (
    BAD_REQUEST,
    ENDPOINT_NOT_FOUND,
    PERMISSION_DENIED,
    REQUEST_LIMIT_EXCEEDED,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    UNAUTHENTICATED,
    MlflowError,
    from_domain,
    invalid,
)
from registry import services
from registry.content import DIGEST_RE
from registry.models import Asset, AssetKind, AssetVersion, Relation, Stage, StagePointer
from registry.permissions import restrict
from registry.selectors import stage_get_or_invalid
from registry.services import VersionRef

MAX_STRING = 1000
MAX_DESCRIPTION = 100_000
MAX_RESULTS_MODELS = 1000
PAGE_LIMIT = 1000
DATASET_TAG = re.compile(r"^dataset:(?P<name>[^@\s]+)@(?P<number>\d{1,9})$")
PROMOTION_PAGE = "/promotions/new/{kind}/{name}/"


def _source(request) -> Source:
    return Source.from_request(request, Channel.MLFLOW)


# Arguments ------------------------------------------------------------------------------------------------


class Args:
    """A request's arguments: the query string for GET, the JSON object otherwise."""

    def __init__(self, request):
        if request.method == "GET":
            self.data, self.query = request.query_params, True
        else:
            data = request.data
            if not isinstance(data, dict):
                raise MlflowError(BAD_REQUEST, "The request body must be a JSON object.")
            self.data, self.query = data, False

    def _raw(self, name: str):
        if self.query:
            values = self._query_values(name)
            return values[-1] if values else None
        return self.data.get(name)

    def _query_values(self, name: str) -> list[str]:
        values = self.data.getlist(name)
        if any("\x00" in value for value in values):  # JSON bodies are checked by the parser
            raise invalid(f"Parameter '{name}' contains a NUL character.")
        return values

    def string(self, name: str, *, required: bool = False, limit: int = MAX_STRING) -> str:
        value = self._raw(name)
        if value is None or value == "":
            if required:
                raise invalid(f"Missing value for required parameter '{name}'.")
            return ""
        if not isinstance(value, str):
            raise invalid(f"Parameter '{name}' must be a string.")
        if len(value) > limit:
            raise invalid(f"Parameter '{name}' is longer than {limit} characters.")
        return value

    def integer(self, name: str, *, default: int, low: int, high: int) -> int:
        value = self._raw(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise invalid(f"Parameter '{name}' must be an integer.")
        if isinstance(value, str):
            if not re.fullmatch(r"-?\d{1,12}", value.strip()):
                raise invalid(f"Parameter '{name}' must be an integer.")
            value = int(value)
        if not isinstance(value, int):
            raise invalid(f"Parameter '{name}' must be an integer.")
        if not low <= value <= high:
            raise invalid(f"Parameter '{name}' must be between {low} and {high}, got {value}.")
        return value

    def version(self, name: str = "version") -> int:
        value = self._raw(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not re.fullmatch(r"\d{1,9}", value.strip()):
            raise invalid(f"Parameter '{name}' must be a version number, got {value!r}.")
        return int(value)

    def strings(self, name: str) -> list[str]:
        if self.query:
            values = self._query_values(name)
        else:
            values = self.data.get(name) or []
            if not isinstance(values, list):
                raise invalid(f"Parameter '{name}' must be a list of strings.")
        if len(values) > 100 or not all(isinstance(v, str) and len(v) <= MAX_STRING for v in values):
            raise invalid(f"Parameter '{name}' must be a list of at most 100 strings.")
        return values

    def tags(self, name: str = "tags") -> list[tuple[str, str]]:
        """MLflow tags: a list of {"key", "value"} (query strings carry none)."""
        raw = self.data.get(name) if not self.query else None
        if raw is None:
            return []
        if not isinstance(raw, list) or len(raw) > 100:
            raise invalid(f"Parameter '{name}' must be a list of at most 100 {{key, value}} objects.")
        pairs = []
        for index, tag in enumerate(raw):
            if not isinstance(tag, dict) or not isinstance(tag.get("key"), str) or not tag["key"]:
                raise invalid(f"{name}[{index}] must be an object with a non-empty string 'key'.")
            value = tag.get("value", "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise invalid(f"{name}[{index}].value must be a string.")
            if len(tag["key"]) > 250 or len(value) > MAX_DESCRIPTION:
                raise invalid(f"{name}[{index}] is too long.")
            pairs.append((tag["key"], value))
        return pairs


# Lookups: what the caller may see, else the same answer as for what does not exist -------------------------


def _missing_model(name: str) -> MlflowError:
    return MlflowError(RESOURCE_DOES_NOT_EXIST, f"Registered Model with name={name} not found")


def _missing_version(name: str, number: int) -> MlflowError:
    return MlflowError(RESOURCE_DOES_NOT_EXIST, f"Model Version (name={name}, version={number}) not found")


ASSET_COLUMNS = [field.attname for field in Asset._meta.concrete_fields]


def _asset_query(*, user, name: str, model: str, prompt: str):
    assets = restrict(Asset.objects.filter(kind__in=(model, prompt), name=name), user)
    return assets.order_by("kind").values_list(*ASSET_COLUMNS, "team__name", "created_by__username")


# Every call under a registered model starts here: compiled once per shape (core.compiled), as the
# registry's own asset_get_for_user is.
_ASSET = CompiledQuery(_asset_query)


def _asset(request, name: str) -> Asset:
    """The model or prompt named name that the caller may see (a model first: MLflow has one namespace)."""
    user = request.user
    shape = "all" if reads_everything(user) else "granted"
    row = _ASSET.first(
        shape, {"user": user}, name=name, model=str(AssetKind.MODEL), prompt=str(AssetKind.PROMPT)
    )
    if row is None:
        raise _missing_model(name)
    columns = len(ASSET_COLUMNS)
    asset = Asset.from_db("default", ASSET_COLUMNS, row[:columns])
    team_name, creator_name = row[columns:]
    if asset.team_id:
        asset.team = Group.from_db("default", ["id", "name"], [asset.team_id, team_name])
    if asset.created_by_id:
        asset.created_by = User.from_db("default", ["id", "username"], [asset.created_by_id, creator_name])
    return asset


def _version(asset: Asset, number: int) -> AssetVersion:
    version = AssetVersion.objects.filter(asset=asset, number=number).select_related("created_by").first()
    if version is None:
        raise _missing_version(asset.name, number)
    version.asset = asset
    return version


def _stages_of(asset_ids, version_ids=None) -> dict[int, list[str]]:
    """Stage names per version id (one query)."""
    pointers = StagePointer.objects.filter(asset_id__in=asset_ids)
    if version_ids is not None:
        pointers = pointers.filter(version_id__in=version_ids)
    stages: dict[int, list[str]] = {}
    for version_id, stage in pointers.order_by("stage__order").values_list("version_id", "stage__name"):
        stages.setdefault(version_id, []).append(stage)
    return stages


def _version_answer(version: AssetVersion, asset: Asset) -> dict:
    stages = _stages_of([asset.pk], [version.pk]).get(version.pk, [])
    return {"model_version": present.model_version(version, asset=asset, stages=stages)}


def _model_answer(asset: Asset) -> dict:
    pointers = (
        StagePointer.objects.filter(asset=asset)
        .order_by("stage__order")
        .values_list("stage__name", "version__number")
    )
    latest = AssetVersion.objects.filter(asset=asset).select_related("created_by").order_by("-number").first()
    return {"registered_model": present.registered_model(asset, aliases=list(pointers), latest=latest)}


# Tags -------------------------------------------------------------------------------------------------------


def _registry_tag(key: str, value: str) -> str:
    text = present.tag_text(key, value)
    if len(text) > 50:
        raise invalid(
            f"Tag {key!r}: the registry keeps a tag as 'key=value' in at most 50 characters "
            f"({len(text)} given)."
        )
    return text


def _set_tag(tags: list[str], key: str, value: str) -> list[str]:
    kept = [tag for tag in tags if present.tag_pair(tag)[0] != key]
    return [*kept, _registry_tag(key, value)]


def _delete_tag(tags: list[str], key: str, where: str) -> list[str]:
    kept = [tag for tag in tags if present.tag_pair(tag)[0] != key]
    if len(kept) == len(tags):
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"No tag with key {key!r} on {where}.")
    return kept


# Registered models ---------------------------------------------------------------------------------------


def create_registered_model(request, args: Args) -> dict:
    name = args.string("name", required=True, limit=100)
    tags = args.tags()
    is_prompt = any(key == present.IS_PROMPT and value.lower() == "true" for key, value in tags)
    others = [(key, value) for key, value in tags if key != present.IS_PROMPT]
    if Asset.objects.filter(kind__in=(AssetKind.MODEL, AssetKind.PROMPT), name=name).exists():
        raise MlflowError(RESOURCE_ALREADY_EXISTS, f"Registered Model (name={name}) already exists.")
    asset = services.asset_create(
        actor=request.user,
        source=_source(request),
        kind=AssetKind.PROMPT if is_prompt else AssetKind.MODEL,
        name=name,
        description=args.string("description", limit=MAX_DESCRIPTION),
        tags=[_registry_tag(key, value) for key, value in others],
    )
    return {"registered_model": present.registered_model(asset)}


def get_registered_model(request, args: Args) -> dict:
    return _model_answer(_asset(request, args.string("name", required=True, limit=100)))


def update_registered_model(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    if "description" in args.data:
        asset = services.asset_update(
            actor=request.user,
            source=_source(request),
            asset=asset,
            description=args.string("description", limit=MAX_DESCRIPTION),
        )
    return {"registered_model": present.registered_model(asset)}


def rename_registered_model(request, args: Args) -> dict:
    name = args.string("name", required=True, limit=100)
    _asset(request, name)
    raise MlflowError(
        PERMISSION_DENIED,
        f"Registered model {name!r} cannot be renamed: names are permanent in this registry, because "
        "promotions, policies, lineage and the audit log refer to them. Register a new model instead.",
    )


def delete_registered_model(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    raise MlflowError(
        PERMISSION_DENIED,
        f"Registered model {asset.name!r} cannot be deleted: the registry archives assets and never deletes "
        f"them, so that their history stays verifiable. Archive it with POST /api/v1/{asset.kind}s/"
        f"{asset.name}/archive or on its page.",
    )


def set_registered_model_tag(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    key = args.string("key", required=True, limit=250)
    value = args.string("value", limit=MAX_STRING)
    if key == present.IS_PROMPT:
        if (value.lower() == "true") != (asset.kind == AssetKind.PROMPT):
            raise invalid(f"Tag {key!r} is fixed: {asset.name!r} is a {asset.kind}.")
        return {}
    services.asset_update(
        actor=request.user, source=_source(request), asset=asset, tags=_set_tag(asset.tags, key, value)
    )
    return {}


def delete_registered_model_tag(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    key = args.string("key", required=True, limit=250)
    tags = _delete_tag(asset.tags, key, f"registered model {asset.name!r}")
    services.asset_update(actor=request.user, source=_source(request), asset=asset, tags=tags)
    return {}


def _kind_filter(clauses: list[search.Clause]) -> tuple[str, list[search.Clause]]:
    """The asset kind a filter asks for (the prompt tag), and the other clauses. Prompts are left out
    unless asked for, as MLflow's own server does."""
    kind, rest = AssetKind.MODEL, []
    for clause in clauses:
        if clause.is_tag and clause.tag == present.IS_PROMPT:
            if clause.op not in ("=", "!=") or not isinstance(clause.value, str):
                raise invalid(f"filter_string: tags.`{present.IS_PROMPT}` takes = or != with 'true'")
            wants_prompt = (clause.value.lower() == "true") == (clause.op == "=")
            kind = AssetKind.PROMPT if wants_prompt else AssetKind.MODEL
        else:
            rest.append(clause)
    return kind, rest


def _text_filter(queryset, field: str, clause: search.Clause):
    op, value = clause.op, clause.value
    if op in ("IN", "NOT IN"):
        if not all(isinstance(item, str) for item in value):
            raise invalid(f"filter_string: {clause.key} {op} takes strings")
        condition = Q(**{f"{field}__in": value})
        return queryset.filter(condition) if op == "IN" else queryset.exclude(condition)
    if not isinstance(value, str):
        raise invalid(f"filter_string: {clause.key} compares with a quoted string")
    if op == "=":
        return queryset.filter(**{field: value})
    if op == "!=":
        return queryset.exclude(**{field: value})
    if op == "LIKE":
        return queryset.filter(**{f"{field}__regex": search.like_regex(value)})
    if op == "ILIKE":
        return queryset.filter(**{f"{field}__iregex": search.like_regex(value)})
    raise invalid(f"filter_string: {clause.key} takes =, !=, LIKE, ILIKE, IN or NOT IN, not {op}")


def _unsupported(clause: search.Clause, supported: str) -> MlflowError:
    return invalid(f"filter_string: cannot filter on {clause.key!r} here; filters: {supported}")


def search_registered_models(request, args: Args) -> dict:
    limit = args.integer("max_results", default=100, low=1, high=MAX_RESULTS_MODELS)
    offset = search.page_token_decode(args.string("page_token"))
    kind, clauses = _kind_filter(search.parse_filter(args.string("filter", limit=search.MAX_FILTER_LENGTH)))
    assets = restrict(Asset.objects.filter(kind=kind), request.user)
    for clause in clauses:
        if clause.key != "name":
            raise _unsupported(clause, f"name, tags.`{present.IS_PROMPT}`")
        assets = _text_filter(assets, "name", clause)
    columns = {"name": "name", "timestamp": "created_at", "creation_timestamp": "created_at"}
    columns["last_updated_timestamp"] = "updated_at"
    orders = search.parse_order_by(args.strings("order_by"), set(columns))
    ordering = [("-" if order.descending else "") + columns[order.key] for order in orders]
    page = list(assets.order_by(*ordering, "name", "pk")[offset : offset + limit + 1])
    answer = {"registered_models": [present.registered_model(asset) for asset in page[:limit]]}
    if len(page) > limit:
        answer["next_page_token"] = search.page_token_encode(offset + limit)
    return answer


def get_latest_versions(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    wanted = [stage.lower() for stage in args.strings("stages")]
    stages = _stages_of([asset.pk])
    versions = AssetVersion.objects.filter(asset=asset).select_related("created_by")
    in_stage = {version_id: names for version_id, names in stages.items()}
    chosen: dict[int, AssetVersion] = {}
    if not wanted or "none" in wanted:
        latest = versions.order_by("-number").first()
        if latest is not None:
            chosen[latest.pk] = latest
    staged = [stage for stage in wanted if stage != "none"] if wanted else None
    ids = [
        version_id
        for version_id, names in in_stage.items()
        if staged is None or any(name in staged for name in names)
    ]
    for version in versions.filter(pk__in=ids):
        chosen[version.pk] = version
    return {
        "model_versions": [
            present.model_version(version, asset=asset, stages=in_stage.get(version.pk, []))
            for version in sorted(chosen.values(), key=lambda v: v.number)
        ]
    }


# Aliases are stages ----------------------------------------------------------------------------------------


def _protected_refusal(asset: Asset, stage: Stage, number: int | None) -> MlflowError:
    version = number if number is not None else "N"
    return MlflowError(
        PERMISSION_DENIED,
        f"Alias {stage.name!r} is the protected stage {stage.name}: production changes only through an "
        f"approved promotion. Request one with POST /api/v1/promotions "
        f'{{"kind": "{asset.kind}", "name": "{asset.name}", "version": {version}, "stage": "{stage.name}", '
        f'"justification": "…"}} or on the page '
        f"{PROMOTION_PAGE.format(kind=asset.kind, name=asset.name)}; once approved, the alias answers the "
        "promoted version.",
    )


def _stage_for_alias(alias: str, field: str = "alias") -> Stage:
    if not alias:
        raise invalid(f"Missing value for required parameter '{field}'.")
    try:
        return stage_get_or_invalid(name=alias.lower(), field=field)
    except DomainError as error:
        raise invalid(f"{error.detail}. An alias here is a stage name.") from None


def _move(request, asset: Asset, stage: Stage, number: int) -> AssetVersion:
    version = _version(asset, number)
    if stage.protected:
        raise _protected_refusal(asset, stage, number)
    try:
        services.stage_set(
            actor=request.user,
            source=_source(request),
            asset=asset,
            stage=stage,
            version=version,
            reason="set through the MLflow API",
        )
    except Conflict as error:
        if error.type != "already-in-stage":  # already there: MLflow answers success, nothing to record
            raise
    return version


def set_registered_model_alias(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    stage = _stage_for_alias(args.string("alias", limit=100))
    _move(request, asset, stage, args.version())
    return {}


def delete_registered_model_alias(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    stage = _stage_for_alias(args.string("alias", limit=100))
    if stage.protected:
        raise _protected_refusal(asset, stage, None)
    raise MlflowError(
        PERMISSION_DENIED,
        f"Alias {stage.name!r} is the stage {stage.name}: a stage is never emptied here, its history is "
        "kept; set the alias to another version instead.",
    )


ALIAS_COLUMNS = (
    "stage__name",
    "asset_id",
    "asset__kind",
    "asset__name",
    "version_id",
    "version__number",
    "version__description",
    "version__tags",
    "version__digest",
    "version__uri",
    "version__origin",
    "version__metadata",
    "version__template",
    "version__model_config",
    "version__commit_message",
    "version__created_at",
    "version__created_by_id",
    "version__created_by__username",
)


def _alias_query(*, user, name: str, model: str, prompt: str):
    """Every stage pointer of the model or prompt named name, with its version: the alias's row, and the
    other stages its version is in, in one query."""
    pointers = StagePointer.objects.filter(asset__kind__in=(model, prompt), asset__name=name)
    pointers = restrict(pointers, user, field="asset").order_by("asset__kind", "stage__order")
    return pointers.values_list(*ALIAS_COLUMNS)


# The MLflow client's hottest read (get_model_version_by_alias, load_prompt by alias): one query, compiled
# once per shape as the registry's own stage resolve is (core.compiled); visibility is in the same SQL.
_ALIAS = CompiledQuery(_alias_query)


def get_model_version_by_alias(request, args: Args) -> dict:
    name = args.string("name", required=True, limit=100)
    alias = args.string("alias", required=True, limit=100)
    user = request.user
    shape = "all" if reads_everything(user) else "granted"
    rows = _ALIAS.rows(
        shape, {"user": user}, name=name, model=str(AssetKind.MODEL), prompt=str(AssetKind.PROMPT)
    )
    row = next((row for row in rows if row[0] == alias.lower()), None)  # a model's first (ordered by kind)
    if row is None:
        _asset(request, name)  # a missing or invisible model says so; a visible one has no such alias
        raise MlflowError(RESOURCE_DOES_NOT_EXIST, f"Registered model alias {alias} not found.")
    # Plain records, not model instances: present.py reads attributes only, and this is the hottest path.
    data = dict(zip(ALIAS_COLUMNS, row, strict=True))
    asset = SimpleNamespace(kind=data["asset__kind"], name=data["asset__name"])
    version = SimpleNamespace(
        **{column[len("version__") :]: data[column] for column in ALIAS_COLUMNS[5:]},
        created_by=SimpleNamespace(username=data["version__created_by__username"]),
    )
    stages = [other[0] for other in rows if (other[1], other[4]) == (row[1], row[4])]  # asset, version
    return {"model_version": present.model_version(version, asset=asset, stages=stages)}


# Model versions ------------------------------------------------------------------------------------------


@dataclass
class _VersionInput:
    data: dict
    lineage: list


def _version_input(asset: Asset, args: Args) -> _VersionInput:
    """A new version's content from MLflow's fields and tags (see docs/mlflow.md for the mapping)."""
    data: dict = {"tags": [], "metadata": {}}
    lineage = []
    origin = {}
    run_id, run_link, model_id = args.string("run_id"), args.string("run_link"), args.string("model_id")
    if run_id:
        origin["mlflow_run_id"] = run_id
    if run_link:
        origin["run_url"] = run_link
    if model_id:
        origin["mlflow_model_id"] = model_id
    data["origin"] = origin
    description = args.string("description", limit=MAX_DESCRIPTION)
    prompt = asset.kind == AssetKind.PROMPT
    for key, value in args.tags():
        if key == present.IS_PROMPT:
            if (value.lower() == "true") != prompt:
                raise invalid(
                    f"{asset.name!r} is registered as a {asset.kind}, not a "
                    f"{'prompt' if value.lower() == 'true' else 'model'}."
                )
        elif prompt and key == present.PROMPT_TEXT:
            data["template"] = value
        elif prompt and key == present.PROMPT_TYPE:
            if value not in ("text", "chat"):
                raise invalid(f"Tag {key!r} must be 'text' or 'chat'.")
            data["metadata"]["mlflow_prompt_type"] = value
        elif prompt and key in (present.PROMPT_MODEL_CONFIG, present.PROMPT_RESPONSE_FORMAT):
            try:
                parsed = json.loads(value)
            except ValueError:
                raise invalid(f"Tag {key!r} must be a JSON object.") from None
            if not isinstance(parsed, dict):
                raise invalid(f"Tag {key!r} must be a JSON object.")
            if key == present.PROMPT_MODEL_CONFIG:
                data["model_config"] = parsed
            else:
                data["metadata"]["mlflow_response_format"] = parsed
        elif key == present.DIGEST_TAG:
            if prompt:
                raise invalid("Tag 'digest': a prompt's digest is computed by the registry from its content.")
            if not DIGEST_RE.match(value):
                raise invalid("Tag 'digest' must be 'sha256:' followed by 64 lowercase hex digits.")
            data["digest"] = value
        elif DATASET_TAG.match(key) or (key == "dataset" and DATASET_TAG.match(f"dataset:{value}")):
            match = DATASET_TAG.match(key) or DATASET_TAG.match(f"dataset:{value}")
            ref = VersionRef(kind=AssetKind.DATASET, name=match["name"], version=int(match["number"]))
            lineage.append((Relation.TRAINED_ON, ref))
        else:
            data["tags"].append(_registry_tag(key, value))
    if prompt:
        if len(description) > 500:
            raise invalid(
                "Parameter 'description': a prompt version's commit message is at most 500 characters."
            )
        data["commit_message"] = description
    else:
        data["description"] = description
        data["uri"] = args.string("source", required=True)
    if not data["metadata"]:
        del data["metadata"]
    return _VersionInput(data=data, lineage=lineage)


def create_model_version(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    given = _version_input(asset, args)
    try:
        version = services.version_register(
            actor=request.user,
            source=_source(request),
            asset=asset,
            data=given.data,
            lineage=given.lineage,
            digest_optional=True,
        )
    except DomainError as error:
        raise _version_error(error) from None
    version.asset = asset
    return {"model_version": present.model_version(version, asset=asset)}


def _version_error(error: DomainError) -> MlflowError:
    """A registration refusal named in MLflow's terms (lineage[i] is the dataset tag)."""
    answer = from_domain(error)
    if getattr(error, "type", "") == "unknown-version":
        answer.message = f"Tag dataset: {error.detail.split(': ', 1)[-1]} (or you may not see it)."
    return answer


def get_model_version(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    return _version_answer(_version(asset, args.version()), asset)


def update_model_version(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    version = _version(asset, args.version())
    if "description" in args.data:
        version = services.version_update(
            actor=request.user,
            source=_source(request),
            version=version,
            description=args.string("description", limit=MAX_DESCRIPTION),
        )
        version.asset = asset
    return _version_answer(version, asset)


def delete_model_version(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    version = _version(asset, args.version())
    raise MlflowError(
        PERMISSION_DENIED,
        f"Version {version.number} of {asset.name!r} cannot be deleted: versions are immutable in this "
        "registry, because promotions, lineage and the audit log refer to them. Archive the model instead.",
    )


def set_model_version_tag(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    version = _version(asset, args.version())
    key = args.string("key", required=True, limit=250)
    if key in (present.DIGEST_TAG, present.IS_PROMPT, present.PROMPT_TEXT, present.PROMPT_TYPE):
        raise invalid(f"Tag {key!r} is part of the version's content, which is immutable.")
    tags = _set_tag(version.tags, key, args.string("value", limit=MAX_STRING))
    services.version_update(actor=request.user, source=_source(request), version=version, tags=tags)
    return {}


def delete_model_version_tag(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    version = _version(asset, args.version())
    key = args.string("key", required=True, limit=250)
    tags = _delete_tag(version.tags, key, f"version {version.number} of {asset.name!r}")
    services.version_update(actor=request.user, source=_source(request), version=version, tags=tags)
    return {}


def get_model_version_download_uri(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    return {"artifact_uri": _version(asset, args.version()).uri}


def transition_model_version_stage(request, args: Args) -> dict:
    asset = _asset(request, args.string("name", required=True, limit=100))
    number = args.version()
    wanted = args.string("stage", required=True, limit=100)
    if wanted.lower() in ("none", "archived"):
        raise invalid(
            f"Stage {wanted!r}: a version leaves a stage only when another version enters it; stages here "
            f"are {', '.join(Stage.objects.values_list('name', flat=True))}."
        )
    stage = _stage_for_alias(wanted, field="stage")
    version = _move(request, asset, stage, number)
    return _version_answer(version, asset)


VERSION_ORDER = {
    "name": "asset__name",
    "version_number": "number",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "created_at",
    "timestamp": "created_at",
}


def search_model_versions(request, args: Args) -> dict:
    limit = args.integer("max_results", default=10_000, low=1, high=200_000)
    page_size = min(limit, PAGE_LIMIT)
    offset = search.page_token_decode(args.string("page_token"))
    kind, clauses = _kind_filter(search.parse_filter(args.string("filter", limit=search.MAX_FILTER_LENGTH)))
    versions = restrict(AssetVersion.objects.filter(asset__kind=kind), request.user, field="asset")
    for clause in clauses:
        if clause.key == "name":
            versions = _text_filter(versions, "asset__name", clause)
        elif clause.key == "run_id":
            versions = _text_filter(versions, "origin__mlflow_run_id", clause)
        elif clause.key == "source_path":
            versions = _text_filter(versions, "uri", clause)
        elif clause.key in ("version_number", "version"):
            versions = _number_filter(versions, clause)
        else:
            raise _unsupported(
                clause, f"name, run_id, source_path, version_number, tags.`{present.IS_PROMPT}`"
            )
    orders = search.parse_order_by(args.strings("order_by"), set(VERSION_ORDER))
    ordering = [("-" if order.descending else "") + VERSION_ORDER[order.key] for order in orders]
    page = list(
        versions.select_related("asset", "created_by").order_by(*ordering, "asset__name", "-number", "pk")[
            offset : offset + page_size + 1
        ]
    )[: page_size + 1]
    shown = page[:page_size]
    stages = _stages_of({version.asset_id for version in shown}, [version.pk for version in shown])
    answer = {
        "model_versions": [
            present.model_version(version, asset=version.asset, stages=stages.get(version.pk, []))
            for version in shown
        ]
    }
    if len(page) > page_size and offset + page_size < limit:
        answer["next_page_token"] = search.page_token_encode(offset + page_size)
    return answer


def _number_filter(versions, clause: search.Clause):
    values = clause.value if clause.op in ("IN", "NOT IN") else (clause.value,)
    numbers = []
    for value in values:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(f"filter_string: {clause.key} compares with a whole number")
        numbers.append(value)
    lookups = {"=": "number", "<": "number__lt", "<=": "number__lte", ">": "number__gt", ">=": "number__gte"}
    if clause.op in lookups:
        return versions.filter(**{lookups[clause.op]: numbers[0]})
    if clause.op == "!=":
        return versions.exclude(number=numbers[0])
    if clause.op == "IN":
        return versions.filter(number__in=numbers)
    if clause.op == "NOT IN":
        return versions.exclude(number__in=numbers)
    raise invalid(f"filter_string: {clause.key} takes = != < <= > >= IN NOT IN, not {clause.op}")


# The route table and the one view that serves it ---------------------------------------------------------


@dataclass(frozen=True)
class Route:
    handler: object
    scope: str = Scope.WRITE


RM, MV = "registered-models", "model-versions"
READ = Scope.READ
ROUTES: dict[str, dict[str, Route]] = {
    f"{RM}/create": {"POST": Route(create_registered_model)},
    f"{RM}/get": {"GET": Route(get_registered_model, READ)},
    f"{RM}/search": {"GET": Route(search_registered_models, READ)},
    f"{RM}/update": {"PATCH": Route(update_registered_model)},
    f"{RM}/delete": {"DELETE": Route(delete_registered_model)},
    f"{RM}/rename": {"POST": Route(rename_registered_model)},
    f"{RM}/set-tag": {"POST": Route(set_registered_model_tag)},
    f"{RM}/delete-tag": {"DELETE": Route(delete_registered_model_tag)},
    f"{RM}/get-latest-versions": {
        "POST": Route(get_latest_versions, READ),
        "GET": Route(get_latest_versions, READ),
    },
    f"{RM}/alias": {
        "POST": Route(set_registered_model_alias),
        "DELETE": Route(delete_registered_model_alias),
        "GET": Route(get_model_version_by_alias, READ),
    },
    f"{MV}/create": {"POST": Route(create_model_version)},
    f"{MV}/get": {"GET": Route(get_model_version, READ)},
    f"{MV}/search": {"GET": Route(search_model_versions, READ)},
    f"{MV}/update": {"PATCH": Route(update_model_version)},
    f"{MV}/delete": {"DELETE": Route(delete_model_version)},
    f"{MV}/set-tag": {"POST": Route(set_model_version_tag)},
    f"{MV}/delete-tag": {"DELETE": Route(delete_model_version_tag)},
    f"{MV}/get-download-uri": {"GET": Route(get_model_version_download_uri, READ)},
    f"{MV}/transition-stage": {"POST": Route(transition_model_version_stage)},
}


def _not_served(path: str, method: str) -> MlflowError:
    return MlflowError(
        ENDPOINT_NOT_FOUND,
        f"{method} {path} is not served here: this server is an MLflow model registry (registered models, "
        "model versions and prompts). Runs, experiments, logged models and artifacts stay on your MLflow "
        "tracking server (see docs/mlflow.md).",
    )


class MlflowView(APIView):
    """Every MLflow route: authentication and token scopes as for the registry's own API, MLflow's errors."""

    schema = None  # not part of the registry's OpenAPI document: MLflow documents these routes
    route: dict[str, Route] | None = None
    endpoint = ""

    @property
    def token_scope(self) -> str:
        route = (self.route or {}).get(self.request.method)
        return route.scope if route else Scope.READ

    def _serve(self, request, *args, **kwargs):
        route = (self.route or {}).get(request.method)
        if route is None:
            raise _not_served(request.path, request.method)
        return Response(route.handler(request, Args(request)))

    get = post = patch = delete = put = _serve

    def options(self, request, *args, **kwargs):
        return self._serve(request)

    def handle_exception(self, exc):
        if isinstance(exc, DomainError):
            answer = from_domain(exc)
        elif isinstance(exc, MlflowError):
            answer = exc
        elif isinstance(exc, drf_exceptions.NotAuthenticated | drf_exceptions.AuthenticationFailed):
            answer = MlflowError(UNAUTHENTICATED, str(exc.detail))
        elif isinstance(exc, drf_exceptions.PermissionDenied):
            answer = MlflowError(PERMISSION_DENIED, str(exc.detail))
        elif isinstance(exc, drf_exceptions.Throttled):
            answer = MlflowError(REQUEST_LIMIT_EXCEEDED, str(exc.detail))
        elif isinstance(exc, drf_exceptions.ParseError | drf_exceptions.UnsupportedMediaType):
            answer = MlflowError(BAD_REQUEST, f"The request body is not valid JSON: {exc.detail}")
        elif isinstance(exc, Http404):
            answer = MlflowError(RESOURCE_DOES_NOT_EXIST, "Not found.")
        else:
            return super().handle_exception(exc)
        response = Response(answer.body(), status=answer.status)
        if answer.code == UNAUTHENTICATED:
            response["WWW-Authenticate"] = 'Bearer realm="mlflow"'
        return response


@csrf_exempt
def not_served(request, rest: str = ""):
    """Any other path under /mlflow/: MLflow's ENDPOINT_NOT_FOUND, as JSON, before authentication."""
    answer = _not_served(request.path, request.method)
    return JsonResponse(answer.body(), status=answer.status)
