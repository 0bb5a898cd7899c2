"""Every change to the registry, each in one transaction together with its audit event."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import User
from accounts.permissions import is_read_only_account
from audit.models import Action
from audit.services import audit_record, lock_log
from core.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from core.source import Source
from core.validators import name_validator
from registry import content
from registry.models import (
    Asset,
    AssetKind,
    AssetVersion,
    Evaluation,
    LineageEdge,
    Relation,
    RiskTier,
    Stage,
    StageHistory,
    StagePointer,
)
from registry.permissions import (
    CODENAMES,
    Role,
    can_create_assets,
    effective_roles,
    granted_codenames_sql,
    require,
    restrict,
    role_rule,
)
from registry.selectors import asset_get_for_user, lineage_reaches

VERSION_FIELDS = {
    AssetKind.MODEL: {"framework", "metrics", "params", "signature", "model_card"},
    AssetKind.PROMPT: {"template", "variables", "model_config", "commit_message"},
    AssetKind.DATASET: {"row_count", "schema"},
}
VERSION_COMMON_FIELDS = {"description", "tags", "digest", "uri", "metadata", "origin"}
ASSET_EDITABLE = ("description", "team", "risk_tier", "tags")
VERSION_EDITABLE = ("description", "tags")


@dataclass(frozen=True)
class VersionRef:
    """A reference to another version by kind, name and number, as clients write it."""

    kind: str
    name: str
    version: int


def _check_name(name: str) -> None:
    try:
        name_validator(name)
    except Exception:
        raise InvalidInput.field("name", name_validator.message) from None


def _check_writable(asset: Asset) -> None:
    if asset.is_archived:
        raise Conflict(f"{asset} is archived; it accepts no changes.", type="asset-archived")


def _resolve(ref: VersionRef, *, field: str, actor) -> AssetVersion:
    """The referenced version, if it exists and actor may see it (the error is the same otherwise)."""
    versions = AssetVersion.objects.select_related("asset").filter(
        asset__kind=ref.kind, asset__name=ref.name, number=ref.version
    )
    if actor is not None:
        versions = restrict(versions, actor, field="asset")
    version = versions.first()
    if version is None:
        raise InvalidInput.field(
            field,
            f"{ref.kind}/{ref.name} version {ref.version} does not exist",
            type="unknown-version",
        )
    return version


@transaction.atomic(durable=True)
def asset_create(
    *,
    actor,
    source: Source,
    kind: AssetKind,
    name: str,
    description: str = "",
    team: Group | None = None,
    risk_tier: RiskTier = RiskTier.MEDIUM,
    tags: list[str] | None = None,
) -> Asset:
    """Register a new model, prompt or dataset; its creator manages it and its team contributes."""
    if not can_create_assets(actor):
        raise Forbidden("Creating assets needs the global 'add asset' permission.", type="permission-denied")
    _check_name(name)
    if Asset.objects.filter(kind=kind, name=name).exists():
        raise Conflict(f"A {kind} named {name!r} already exists.", type="duplicate-name")
    asset = Asset(
        kind=kind,
        name=name,
        description=description,
        team=team,
        risk_tier=risk_tier,
        tags=content.validate_tags(tags or []),
        created_by=actor,
    )
    try:
        with transaction.atomic():
            asset.save()
    except IntegrityError:  # lost a race with a concurrent create of the same name
        raise Conflict(f"A {kind} named {name!r} already exists.", type="duplicate-name") from None
    grants = []
    if actor is not None:
        # A person who creates an asset manages it; a service account may only contribute to it.
        role = Role.CONTRIBUTE if actor.is_service_account else Role.MANAGE
        assign_perm(f"registry.{CODENAMES[role]}", actor, asset)
        grants.append({"principal": f"user:{actor.username}", "role": role})
    if team is not None:
        assign_perm(f"registry.{CODENAMES[Role.CONTRIBUTE]}", team, asset)
        grants.append({"principal": f"team:{team.name}", "role": Role.CONTRIBUTE})
    audit_record(
        actor=actor,
        action=Action.ASSET_CREATED,
        target=asset,
        source=source,
        asset_id=asset.pk,
        changes={"after": _asset_fields(asset), "grants": grants},
    )
    return asset


def _asset_fields(asset: Asset) -> dict:
    return {
        "description": asset.description,
        "team": asset.team.name if asset.team else None,
        "risk_tier": asset.risk_tier,
        "tags": asset.tags,
    }


@transaction.atomic(durable=True)
def asset_update(*, actor, source: Source, asset: Asset, **fields) -> Asset:
    """Change an asset's description, owning team, risk tier or tags."""
    unknown = set(fields) - set(ASSET_EDITABLE)
    if unknown:
        raise InvalidInput.field(sorted(unknown)[0], "cannot be changed")
    require(actor, asset, Role.MANAGE)
    asset = Asset.objects.select_for_update(of=("self",)).select_related("team").get(pk=asset.pk)
    _check_writable(asset)
    if "tags" in fields:
        fields["tags"] = content.validate_tags(fields["tags"])
    before = _asset_fields(asset)
    for key, value in fields.items():
        setattr(asset, key, value)
    after = _asset_fields(asset)
    changed = [key for key in ASSET_EDITABLE if before[key] != after[key]]
    if not changed:
        return asset
    asset.save(update_fields=[*changed, "updated_at"])
    audit_record(
        actor=actor,
        action=Action.ASSET_UPDATED,
        target=asset,
        source=source,
        asset_id=asset.pk,
        changes={
            "before": {k: before[k] for k in changed},
            "after": {k: after[k] for k in changed},
        },
    )
    return asset


@transaction.atomic(durable=True)
def asset_archive(*, actor, source: Source, asset: Asset, reason: str = "") -> Asset:
    """Archive an asset: it stays readable, and takes no new versions or stage moves."""
    require(actor, asset, Role.MANAGE)
    asset = Asset.objects.select_for_update().get(pk=asset.pk)
    _check_writable(asset)
    asset.archived_at = timezone.now()
    asset.save(update_fields=["archived_at", "updated_at"])
    audit_record(
        actor=actor,
        action=Action.ASSET_ARCHIVED,
        target=asset,
        source=source,
        asset_id=asset.pk,
        changes={"reason": reason},
    )
    return asset


def _version_content(kind: str, data: dict, *, digest_optional: bool = False) -> dict:
    """Validate the kind-specific content of a new version and derive what the server computes.

    digest_optional: a model or dataset version without a digest is stored as `DIGEST_NOT_GIVEN` (the MLflow
    API, whose client sends none); the policy gate `digest` refuses to promote it."""
    data = dict(data)
    unknown = sorted(set(data) - VERSION_COMMON_FIELDS - VERSION_FIELDS[kind])
    if unknown:
        raise InvalidInput.field(unknown[0], f"is not a field of a {kind} version")
    if "metrics" in data:
        content.validate_metrics(data["metrics"])
    data["tags"] = content.validate_tags(data.get("tags", []))
    if kind == AssetKind.PROMPT:
        template = data.get("template") or ""
        if not template.strip():
            raise InvalidInput.field("template", "is required for a prompt")
        derived = content.template_variables(template)
        if "variables" in data and list(data["variables"]) != derived:
            raise InvalidInput.field("variables", f"do not match the template's placeholders {derived}")
        data["variables"] = derived
        digest = content.prompt_digest(template=template, model_config=data.get("model_config", {}))
        if data.get("digest") and data["digest"] != digest:
            raise InvalidInput.field(
                "digest", f"does not match the prompt's content; the server computes {digest}"
            )
        data["digest"] = digest
    else:
        if not data.get("digest") and digest_optional:
            data["digest"] = content.DIGEST_NOT_GIVEN
            if kind == AssetKind.DATASET and not data.get("uri"):
                raise InvalidInput.field("uri", "is required for a dataset")
            return data
        if not data.get("digest"):
            raise InvalidInput.field("digest", f"is required for a {kind}")
        content.validate_digest(data["digest"])
        if kind == AssetKind.DATASET and not data.get("uri"):
            raise InvalidInput.field("uri", "is required for a dataset")
    return data


def _version_input(actor, kind: str, data: dict, lineage, digest_optional: bool = False) -> tuple[dict, list]:
    data = _version_content(kind, data, digest_optional=digest_optional)
    parents = []
    for index, (relation, ref) in enumerate(lineage):
        parent = _resolve(ref, field=f"lineage[{index}]", actor=actor)
        if (relation, parent.pk) in {(r, p.pk) for r, p in parents}:
            raise InvalidInput.field(f"lineage[{index}]", "is listed twice")
        parents.append((relation, parent))
    return data, parents


def _version_created(actor, source: Source, version: AssetVersion, parents: list) -> AssetVersion:
    if parents:  # bulk_create costs Python time even with nothing to insert
        LineageEdge.objects.bulk_create(
            LineageEdge(parent=parent, child=version, relation=relation, created_by=actor)
            for relation, parent in parents
        )
    audit_record(
        actor=actor,
        action=Action.VERSION_CREATED,
        target=version,
        source=source,
        asset_id=version.asset_id,
        changes={
            "after": {
                "number": version.number,
                "digest": version.digest,
                "uri": version.uri,
                "metrics": version.metrics,
                "source": version.origin,
                "lineage": [{"relation": relation, "parent": str(parent)} for relation, parent in parents],
            }
        },
    )
    return version


@transaction.atomic(durable=True)
def version_register(
    *,
    actor,
    source: Source,
    asset: Asset,
    data: dict,
    lineage: list[tuple[Relation, VersionRef]] = (),
    digest_optional: bool = False,
) -> AssetVersion:
    """Register the next version of an asset, with its lineage, numbered without gaps."""
    if connection.vendor == "postgresql":
        return _register_in_one_statement(
            actor, source, asset.kind, {"id": asset.pk}, data, lineage, digest_optional
        )
    return _register(actor, source, asset, data, lineage, digest_optional)


def _register(actor, source: Source, asset: Asset, data: dict, lineage, digest_optional=False):
    require(actor, asset, Role.CONTRIBUTE)
    data, parents = _version_input(actor, asset.kind, data, lineage, digest_optional)
    # The row lock on the asset serialises registrations of one asset: numbers never gap or repeat.
    locked = Asset.objects.select_for_update().get(pk=asset.pk)
    _check_writable(locked)
    number = locked.latest_version_number + 1
    version = AssetVersion.objects.create(asset=locked, number=number, created_by=actor, **data)
    locked.latest_version_number = number
    locked.save(update_fields=["latest_version_number"])
    return _version_created(actor, source, version, parents)


@transaction.atomic(durable=True)
def version_register_named(
    *,
    actor,
    source: Source,
    kind: str,
    name: str,
    data: dict,
    lineage: list[tuple[Relation, VersionRef]] = (),
) -> AssetVersion:
    """version_register for the asset kind/name, NotFound if actor may not see it (the API's form: on
    PostgreSQL the asset is found, locked and its roles read by the registering statement itself)."""
    if connection.vendor == "postgresql":
        return _register_in_one_statement(actor, source, kind, {"kind": kind, "name": name}, data, lineage)
    asset = asset_get_for_user(user=actor, kind=kind, name=name)
    return _register(actor, source, asset, data, lineage)


ASSET_COLUMNS = [field.attname for field in Asset._meta.concrete_fields]


def _register_sql(kind_or_id: dict, actor, data: dict) -> tuple[str, list, AssetVersion]:
    """One statement that locks the asset row (found by id or by kind and name), reads the actor's granted
    permission codenames on it, and, if the actor may contribute and the asset is not archived, inserts the
    next version and moves the asset's latest number. It answers one row (none: no such asset) with the
    asset's columns, the codenames, and the new version's id (NULL when nothing was inserted).

    A column whose value is its field's default (most of a version's: '', {}, [], NULL) is written in the
    statement as the literal that the parameter would have been, so only the others are adapted and sent."""
    db = connections[DEFAULT_DB_ALIAS]
    version = AssetVersion(asset_id=0, number=0, created_by=actor, **data)
    params, inline = [], []
    for field, default in _register_defaults():
        value = field.pre_save(version, True)
        if type(value) is type(default) and value == default:
            inline.append(True)
        else:
            inline.append(False)
            params.append(field.get_db_prep_save(value, db))
    if actor is None:
        granted_params, always, codenames = [], True, []
    else:
        granted_params = granted_codenames_sql(user_id=actor.pk)[1]
        always, codenames = role_rule(actor, Role.CONTRIBUTE)
    sql = _register_text(tuple(kind_or_id), actor is None, tuple(inline))
    return sql, [*granted_params, *kind_or_id.values(), *params, always, codenames], version


_SET_IN_SQL = {"id": None, "asset_id": "a.id", "number": "a.latest_version_number + 1"}
_INSERTED = [f for f in AssetVersion._meta.local_concrete_fields if not f.primary_key]


@functools.cache
def _register_defaults() -> list:
    """(field, its default) of each column the registration's parameters fill, in column order."""
    return [(field, field.get_default()) for field in _INSERTED if field.attname not in _SET_IN_SQL]


@functools.cache
def _register_text(keys: tuple[str, ...], system: bool, inline: tuple[bool, ...]) -> str:
    """The text of _register_sql's statement (it depends only on how the asset is found, on whether the
    actor is the system and on which columns hold their default), built once."""
    db = connections[DEFAULT_DB_ALIAS]
    defaults = iter(zip(_register_defaults(), inline, strict=True))
    columns, values = [], []
    for field in _INSERTED:
        columns.append(db.ops.quote_name(field.column))
        cast = f"::{field.db_type(db)}"
        if field.attname in _SET_IN_SQL:
            values.append(_SET_IN_SQL[field.attname])
            continue
        (_, default), literal = next(defaults)
        # The default's literal is what the driver would send for it as a parameter (mogrify).
        values.append(
            (db.ops.compose_sql("%s", [field.get_db_prep_save(default, db)]) if literal else "%s") + cast
        )
    where = " AND ".join(f'"registry_asset".{db.ops.quote_name(key)} = %s' for key in keys)
    granted_sql = "SELECT NULL::varchar WHERE false" if system else granted_codenames_sql(user_id=0)[0]
    asset_columns = ", ".join(f'"registry_asset".{db.ops.quote_name(c)}' for c in ASSET_COLUMNS)
    return f"""
        WITH a AS (
            SELECT {asset_columns}, ARRAY({granted_sql}) AS granted
            FROM "registry_asset" WHERE {where} FOR UPDATE OF "registry_asset"
        ), v AS (
            INSERT INTO "registry_assetversion" ({", ".join(columns)})
            SELECT {", ".join(values)} FROM a
            WHERE a.archived_at IS NULL AND (%s OR a.granted && %s::varchar[])
            RETURNING id, asset_id, number
        ), u AS (
            UPDATE "registry_asset" SET latest_version_number = v.number
            FROM v WHERE "registry_asset".id = v.asset_id
        )
        SELECT a.*, v.id FROM a LEFT JOIN v ON true
    """


def _register_in_one_statement(
    actor, source, kind, kind_or_id, data, lineage, digest_optional: bool = False
) -> AssetVersion:
    """version_register on PostgreSQL: the role check, the asset's lock, the insert and the latest number's
    update in one statement, then the audit event in one more (audit_record). The answers are those of the
    steps of the other path, in the same order: NotFound, Forbidden, then bad input, then asset-archived."""
    try:
        data, parents = _version_input(actor, kind, data, lineage, digest_optional)
    except InvalidInput:
        # Bad input is reported after what the caller may not know or do, as on the other path.
        if "name" in kind_or_id:
            asset = asset_get_for_user(user=actor, kind=kind, name=kind_or_id["name"])
        else:
            asset = Asset.objects.get(pk=kind_or_id["id"])
        require(actor, asset, Role.CONTRIBUTE)
        raise
    sql, params, version = _register_sql(kind_or_id, actor, data)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        if "name" in kind_or_id:
            raise NotFound("Not found.")
        raise Asset.DoesNotExist("Asset matching query does not exist.")
    count = len(ASSET_COLUMNS)
    asset = Asset.from_db(connection.alias, ASSET_COLUMNS, row[:count])
    codenames, version_id = row[count], row[count + 1]
    if actor is not None:
        roles = effective_roles(actor, asset, codenames=codenames)
        if "name" in kind_or_id and Role.VIEW not in roles:
            raise NotFound("Not found.")
        if Role.CONTRIBUTE not in roles:
            raise Forbidden(
                f"You need the '{Role.CONTRIBUTE}' role on {asset} to do this.", type="permission-denied"
            )
    _check_writable(asset)
    if version_id is None:  # cannot happen: the statement decides as the checks above did
        raise RuntimeError(f"the registration of a version of {asset} inserted nothing")
    version.pk, version.asset, version.number = version_id, asset, asset.latest_version_number + 1
    version._state.adding, version._state.db = False, connection.alias
    asset.latest_version_number = version.number
    return _version_created(actor, source, version, parents)


@transaction.atomic(durable=True)
def version_update(*, actor, source: Source, version: AssetVersion, **fields) -> AssetVersion:
    """Change a version's description or tags; its content is immutable."""
    require(actor, version.asset, Role.CONTRIBUTE)
    unknown = set(fields) - set(VERSION_EDITABLE)
    if unknown:
        raise InvalidInput.field(sorted(unknown)[0], "is immutable; only description and tags can change")
    version = AssetVersion.objects.select_for_update(of=("self",)).select_related("asset").get(pk=version.pk)
    _check_writable(version.asset)
    if "tags" in fields:
        fields["tags"] = content.validate_tags(fields["tags"])
    changed = [key for key, value in fields.items() if getattr(version, key) != value]
    if not changed:
        return version
    before = {key: getattr(version, key) for key in changed}
    for key in changed:
        setattr(version, key, fields[key])
    version.save(update_fields=changed)
    audit_record(
        actor=actor,
        action=Action.VERSION_UPDATED,
        target=version,
        source=source,
        asset_id=version.asset_id,
        changes={"before": before, "after": {key: fields[key] for key in changed}},
    )
    return version


@transaction.atomic(durable=True)
def evaluation_add(
    *,
    actor,
    source: Source,
    version: AssetVersion,
    name: str,
    metrics: dict,
    dataset: VersionRef | None = None,
    details: dict | None = None,
) -> Evaluation:
    """Attach evaluation results to a version."""
    require(actor, version.asset, Role.CONTRIBUTE)
    content.validate_metrics(metrics)
    if not metrics:
        raise InvalidInput.field("metrics", "must name at least one metric")
    dataset_version = None
    if dataset is not None:
        dataset_version = _resolve(dataset, field="dataset", actor=actor)
    _check_writable(version.asset)
    evaluation = Evaluation.objects.create(
        version=version,
        name=name,
        metrics=metrics,
        dataset_version=dataset_version,
        details=details or {},
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action=Action.EVALUATION_ADDED,
        target=evaluation,
        source=source,
        asset_id=version.asset_id,
        changes={
            "after": {
                "version": str(version),
                "name": name,
                "metrics": metrics,
                "dataset": str(dataset_version) if dataset_version else None,
            }
        },
    )
    return evaluation


@transaction.atomic(durable=True)
def lineage_add(
    *, actor, source: Source, child: AssetVersion, parent_ref: VersionRef, relation: Relation
) -> LineageEdge:
    """Declare after registration that child was made from parent; refuses cycles."""
    require(actor, child.asset, Role.CONTRIBUTE)
    _check_writable(child.asset)
    parent = _resolve(parent_ref, field="parent", actor=actor)
    if parent.pk == child.pk:
        raise Conflict(f"{child} cannot be its own parent.", type="lineage-cycle")
    # Edges closing a cycle can be far apart in the graph, so lineage additions are serialised as a
    # whole (on the audit log's lock, which this transaction takes anyway) before the cycle check.
    lock_log()
    if lineage_reaches(start=child, target=parent):
        raise Conflict(
            f"{parent} already descends from {child}; the edge would make a cycle.",
            type="lineage-cycle",
        )
    if LineageEdge.objects.filter(parent=parent, child=child, relation=relation).exists():
        raise Conflict("This lineage edge already exists.", type="duplicate-edge")
    edge = LineageEdge.objects.create(parent=parent, child=child, relation=relation, created_by=actor)
    audit_record(
        actor=actor,
        action=Action.LINEAGE_ADDED,
        target=edge,
        source=source,
        asset_id=child.asset_id,
        changes={"after": {"parent": str(parent), "child": str(child), "relation": relation}},
    )
    return edge


@transaction.atomic(durable=True)
def stage_set(
    *, actor, source: Source, asset: Asset, stage: Stage, version: AssetVersion, reason: str = ""
) -> StagePointer:
    """Put a version in an unprotected stage directly; protected stages need an approved promotion."""
    require(actor, asset, Role.CONTRIBUTE)
    if stage.protected:
        raise Conflict(
            f"Stage {stage.name!r} is protected: it changes only through an approved promotion "
            "(POST /api/v1/promotions).",
            type="stage-protected",
        )
    return stage_move(actor=actor, source=source, asset=asset, stage=stage, version=version, reason=reason)


def stage_move(
    *,
    actor,
    source: Source,
    asset: Asset,
    stage: Stage,
    version: AssetVersion,
    reason: str,
    promotion=None,
) -> StagePointer:
    """Move the stage pointer and write its history and audit event (caller holds the transaction).

    For this module and for applying approved promotions only: it checks no role and no protection.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("stage_move must run inside the transaction of the service that calls it")
    locked = Asset.objects.select_for_update().get(pk=asset.pk)
    _check_writable(locked)
    if version.asset_id != locked.pk:
        raise InvalidInput.field("version", f"is not a version of {locked}")
    pointer = StagePointer.objects.filter(asset=locked, stage=stage).first()
    previous = pointer.version if pointer else None
    if previous is not None and previous.pk == version.pk:
        raise Conflict(
            f"{version} is already in {stage.name}.",
            type="already-in-stage",
            extra={"current_version": version.number},
        )
    now = timezone.now()
    if pointer is None:
        pointer = StagePointer.objects.create(
            asset=locked, stage=stage, version=version, updated_by=actor, updated_at=now
        )
    else:
        pointer.version, pointer.updated_by, pointer.updated_at = version, actor, now
        pointer.save(update_fields=["version", "updated_by", "updated_at"])
    StageHistory.objects.create(
        asset=locked,
        stage=stage,
        version=version,
        previous_version=previous,
        reason=reason,
        promotion=promotion,
        actor=actor,
        source=source.channel,
        created_at=now,
    )
    audit_record(
        actor=actor,
        action=Action.STAGE_SET,
        target=pointer,
        source=source,
        asset_id=locked.pk,
        changes={
            "stage": stage.name,
            "before": {"version": previous.number if previous else None},
            "after": {"version": version.number},
            "reason": reason,
            "promotion": promotion.pk if promotion else None,
        },
    )
    return pointer


# Grants: who holds which role on an asset (django-guardian rows in the asset grant tables) ---------------


def _principal_text(principal) -> str:
    return f"team:{principal.name}" if isinstance(principal, Group) else f"user:{principal.username}"


def _holds(principal: User | Group, asset: Asset, role: Role) -> bool:
    grants = (
        principal.assetgroupobjectpermission_set
        if isinstance(principal, Group)
        else principal.assetuserobjectpermission_set
    )
    return grants.filter(content_object=asset, permission__codename=CODENAMES[role]).exists()


@transaction.atomic(durable=True)
def grant_add(*, actor, source: Source, asset: Asset, principal: User | Group, role: Role) -> None:
    """Grant role on asset to a person, service account or team."""
    require(actor, asset, Role.MANAGE)
    if is_read_only_account(principal):
        # An auditor checks the work of everyone else, so holds no role on any asset, not even view.
        raise InvalidInput.field(
            "principal", "an auditor holds no role on assets", type="auditor-cannot-hold-role"
        )
    if role == Role.REVIEW and getattr(principal, "is_service_account", False):
        raise InvalidInput.field(
            "role", "a service account can never review", type="service-account-cannot-review"
        )
    if role not in CODENAMES:
        raise InvalidInput.field("role", f"must be one of {', '.join(Role.values)}")
    if _holds(principal, asset, role):
        raise Conflict(
            f"{_principal_text(principal)} already holds {role} on {asset}.", type="duplicate-grant"
        )
    assign_perm(f"registry.{CODENAMES[role]}", principal, asset)
    audit_record(
        actor=actor,
        action=Action.GRANT_ADDED,
        target=asset,
        source=source,
        asset_id=asset.pk,
        changes={"principal": _principal_text(principal), "role": role},
    )


@transaction.atomic(durable=True)
def grant_remove(*, actor, source: Source, asset: Asset, principal: User | Group, role: Role) -> None:
    """Take role on asset away from a principal; effective at once, pending reviews included."""
    require(actor, asset, Role.MANAGE)
    if not _holds(principal, asset, role):
        raise Conflict(f"{_principal_text(principal)} does not hold {role} on {asset}.", type="no-such-grant")
    remove_perm(f"registry.{CODENAMES[role]}", principal, asset)
    audit_record(
        actor=actor,
        action=Action.GRANT_REMOVED,
        target=asset,
        source=source,
        asset_id=asset.pk,
        changes={"principal": _principal_text(principal), "role": role},
    )
