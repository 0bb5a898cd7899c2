"""audit_record: the only writer of audit events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models.functions import Now

from audit import appender
from audit.canonical import canonical_bytes, chain_hash, format_time, jsonable, leaf_hash
from audit.models import Action, ActorKind, AuditEvent, AuditHead
from core import metrics
from core.outage import after_commit
from core.source import Source

BODY_VERSION = 1
# On PostgreSQL the append runs in one statement (audit.appender); False runs the Python steps there too
# (what SQLite always does): the two give the same bytes, as tests/audit/test_append_sql.py checks.
APPEND_IN_DATABASE = True
# On PostgreSQL an event that no listener is called for is positioned when its transaction commits
# (audit.appender: audit_defer); False appends every event where it is recorded.
APPEND_AT_COMMIT = True


@dataclass(frozen=True)
class TargetRef:
    """A target that is not a row, e.g. the username of a failed sign-in."""

    kind: str
    id: str
    repr: str


def _target(target) -> TargetRef:
    if isinstance(target, TargetRef):
        return target
    return TargetRef(kind=target._meta.label_lower, id=str(target.pk), repr=str(target)[:300])


def actor_kind_of(actor) -> ActorKind:
    if actor is None:
        return ActorKind.SYSTEM
    if getattr(actor, "is_service_account", False):
        return ActorKind.SERVICE_ACCOUNT
    return ActorKind.USER


def _clock_after_lock():
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def event_body(columns: dict) -> bytes:
    """An event's body from its stored columns (AuditEvent field names): the bytes audit_record writes."""
    c = columns
    return canonical_bytes(
        {
            "v": BODY_VERSION,
            "seq": c["seq"],
            "occurred_at": format_time(c["occurred_at"]),
            "actor": {"kind": str(c["actor_kind"]), "id": c["actor_id"], "name": c["actor_repr"]},
            "action": str(c["action"]),
            "target": {"kind": c["target_kind"], "id": c["target_id"], "repr": c["target_repr"]},
            "asset_id": c["asset_id"],
            "changes": c["changes"],
            "source": str(c["source"]),
            "context": c["context"],
        }
    )


# Called with every event just written, inside its transaction (apps above audit register them in their
# AppConfig.ready): what must leave the registry because of an event (webhooks, e-mail) is written to an
# outbox in the transaction of the change, and rolls back with it. A listener that fails fails the change.
_listeners: list[Callable[[AuditEvent], None]] = []
# listener -> wanted(asset_id, action): a queryset that has a row when the listener may have work to do.
_wanted: dict[Callable, Callable] = {}
# listener -> the actions it is called for (a listener without an entry is called for every action).
_actions: dict[Callable, frozenset[str]] = {}


def on_record(
    listener: Callable[[AuditEvent], None],
    *,
    wanted: Callable | None = None,
    actions: Iterable[str] | None = None,
) -> None:
    """Have listener(event) called for every event recorded from now on, in the event's transaction.

    actions, if given, limits the calls to events of those actions.

    wanted(asset_id, action), if given, returns a queryset that has a row whenever the listener could have
    something to do with such an event (a superset is fine). On PostgreSQL it is asked inside the append's
    own statement and the listener is called only when it has a row; elsewhere the listener is always
    called. Its SQL is compiled once per action (with and without an asset), so the queryset may use
    asset_id only as a value to compare with. An event appended at once is asked under the log's lock (what
    committed before its position is seen); an event positioned at commit (audit.appender) is asked when it
    is recorded, before the lock.
    """
    if listener not in _listeners:
        _listeners.append(listener)
    if wanted is not None:
        _wanted[listener] = wanted
    if actions is not None:
        _actions[listener] = frozenset(str(action) for action in actions)


def _in_test_transaction() -> bool:
    """Whether the outermost transaction is one a test case opened to roll back: it never commits, so an
    event waiting for its commit would never be appended."""
    return bool(connection.atomic_blocks) and getattr(connection.atomic_blocks[0], "_from_testcase", False)


def lock_log() -> None:
    """Take the log's append lock now (it is taken anyway by the transaction's first event)."""
    AuditHead.objects.select_for_update().get(pk=1)


def audit_record(
    *,
    actor,
    action: Action,
    target,
    source: Source,
    changes: dict | None = None,
    asset_id: int | None = None,
    positioned: bool = False,
) -> AuditEvent:
    """Append one event to the log, inside the caller's transaction (it commits or rolls back with it).

    On PostgreSQL an event for which no listener is called takes its position when the transaction commits
    (audit.appender): the event returned then has no seq, time, body or hashes yet. positioned=True appends
    it at once, for a caller that needs them before the commit.
    """
    if not connection.in_atomic_block:
        # An event outside the change's transaction could survive a rolled-back change, or vice versa.
        raise RuntimeError("audit_record must run inside the transaction of the change it records")
    kind = actor_kind_of(actor)
    actor_repr = "system" if actor is None else actor.get_username()
    target = _target(target)
    changes = jsonable(changes or {})
    context = jsonable(source.context())

    # Everything but the position and the time is made canonical before the lock is taken, to hold it short.
    # The body's keys sort as action, actor, asset_id, changes, context | occurred_at, seq | source, target,
    # v, so the two halves join around the two members known only under the lock (the result is byte for
    # byte the RFC 8785 form of the whole object; audit_verify checks exactly that).
    before = canonical_bytes(
        {
            "action": str(action),
            "actor": {"kind": kind.value, "id": actor.pk if actor else None, "name": actor_repr},
            "asset_id": asset_id,
            "changes": changes,
            "context": context,
        }
    )
    after = canonical_bytes(
        {
            "source": str(source.channel),
            "target": {"kind": target.kind, "id": target.id, "repr": target.repr},
            "v": BODY_VERSION,
        }
    )

    listeners = [
        listener for listener in _listeners if listener not in _actions or str(action) in _actions[listener]
    ]
    if connection.vendor == "postgresql" and APPEND_IN_DATABASE:
        asked = [listener for listener in listeners if listener in _wanted]
        checks = [_check_sql(listener, asset_id, str(action)) for listener in asked]
        at_commit = APPEND_AT_COMMIT and not positioned and len(asked) == len(listeners)
        at_commit = at_commit and not _in_test_transaction()
        event, answers = _append_in_database(
            before,
            after,
            kind,
            actor,
            actor_repr,
            action,
            target,
            asset_id,
            changes,
            source,
            context,
            checks,
            at_commit=at_commit,
        )
        unwanted = {listener for listener, answer in zip(asked, answers, strict=True) if not answer}
        listeners = [listener for listener in listeners if listener not in unwanted]
    else:
        event = _append(
            before, after, kind, actor, actor_repr, action, target, asset_id, changes, source, context
        )
    for listener in listeners:
        listener(event)
    if action.startswith("promotion."):
        # Counted when the change commits (never for a rolled-back one): registry_promotions_total.
        after_commit(metrics.promotion_committed(action), what="promotion metrics")
    return event


def _append(before, after, kind, actor, actor_repr, action, target, asset_id, changes, source, context):
    """The append in Python (SQLite): lock the head, read the clock, hash, insert the event, move the head."""
    # The head lock serialises appends until commit: positions are gapless and the chain cannot fork.
    head = AuditHead.objects.select_for_update().annotate(now=Now()).get(pk=1)
    # The time comes from the database clock, read once the lock is held, so that time order follows seq
    # order. (PostgreSQL's now() is the statement's start, before it waited for the lock: ask the clock again.
    # SQLite takes its write lock when the transaction begins, so its statement time is already in order.)
    occurred_at = _clock_after_lock() if connection.vendor == "postgresql" else head.now
    seq = head.seq + 1
    body = b'%s,"occurred_at":"%s","seq":%d,%s' % (
        before[:-1],
        format_time(occurred_at).encode(),
        seq,
        after[1:],
    )
    leaf = leaf_hash(body)
    chain = chain_hash(bytes(head.chain_hash), leaf)
    event = _event(
        kind,
        actor,
        actor_repr,
        action,
        target,
        asset_id,
        changes,
        source,
        context,
        seq=seq,
        occurred_at=occurred_at,
        body=body,
        leaf_hash=leaf,
        chain_hash=chain,
    )
    event.save()
    head.seq, head.chain_hash = seq, chain
    head.save(update_fields=["seq", "chain_hash"])
    return event


def _event(
    kind, actor, actor_repr, action, target, asset_id, changes, source, context, **stored
) -> AuditEvent:
    """The event as both appends record it: its columns, and what the append `stored` (position, time, body,
    hashes)."""
    return AuditEvent(
        actor_id=actor.pk if actor else None,
        actor_repr=actor_repr,
        actor_kind=kind,
        action=action,
        target_kind=target.kind,
        target_id=target.id,
        target_repr=target.repr,
        asset_id=asset_id,
        changes=changes,
        source=source.channel,
        context=context,
        **stored,
    )


_ASSET_STAND_IN = -(10**15) - 3  # no asset has this id: where it appears, the event's asset id goes
_check_texts: dict = {}


def _check_sql(listener, asset_id: int | None, action: str) -> str:
    """A listener's question as the text of one EXISTS query, its values inlined by the driver's quoting.

    Compiled once per listener, action and whether there is an asset (the ORM's compiling costs more than
    the question): with a stand-in asset id, whose literal is then replaced by the event's."""
    key = (listener, asset_id is None, action)
    if key not in _check_texts:
        queryset = _wanted[listener](None if asset_id is None else _ASSET_STAND_IN, action)
        sql, params = queryset.values("pk")[:1].query.sql_with_params()
        _check_texts[key] = connection.ops.compose_sql(f"SELECT EXISTS({sql})", params)
    text = _check_texts[key]
    return text if asset_id is None else text.replace(str(_ASSET_STAND_IN), str(int(asset_id)))


def _append_in_database(
    before,
    after,
    kind,
    actor,
    actor_repr,
    action,
    target,
    asset_id,
    changes,
    source,
    context,
    checks,
    *,
    at_commit,
):
    """The same append in one statement: audit_append() (audit.appender) does every step in PostgreSQL;
    audit_defer() leaves the event for the commit when no listener's question wants it (its seq is None)."""
    with connection.cursor() as cursor:
        cursor.execute(
            appender.CALL_AT_COMMIT if at_commit else appender.CALL,
            [
                before[:-1],
                after[1:],
                actor.pk if actor else None,
                actor_repr,
                kind.value,
                str(action),
                target.kind,
                target.id,
                target.repr,
                asset_id,
                json.dumps(changes),
                str(source.channel),
                json.dumps(context),
                checks,
            ],
        )
        event_id, seq, occurred_at, body, leaf, chain, answers = cursor.fetchone()
    event = _event(
        kind,
        actor,
        actor_repr,
        action,
        target,
        asset_id,
        changes,
        source,
        context,
        id=event_id,
        seq=seq,
        occurred_at=occurred_at,
        body=None if body is None else bytes(body),
        leaf_hash=None if leaf is None else bytes(leaf),
        chain_hash=None if chain is None else bytes(chain),
    )
    if seq is None:
        return event, answers  # positioned at commit: not stored yet
    event._state.adding = False
    event._state.db = connection.alias
    return event, answers
