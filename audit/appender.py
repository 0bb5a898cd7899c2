"""The audit append on PostgreSQL in one statement: `audit_append()`, a PL/pgSQL function (installed by
migration 0007).

The function does under one round trip what audit_record does in Python on SQLite: it locks the head row,
reads the clock once the lock is held, splices `"occurred_at"` and `"seq"` between the two canonical halves
of the body that Python built (the body's keys sort as action, actor, asset_id, changes, context |
occurred_at, seq | source, target, v, so the halves join around the two members known only under the lock),
hashes the body with the RFC 6962 leaf prefix and chains it with PostgreSQL's sha256(), inserts the event
and moves the head. The bytes are the ones the Python path writes: the time is the fixed-width UTC form of
`audit.canonical.format_time` (microseconds, as timestamptz stores them) and the seq a plain integer, so
the body stays the RFC 8785 form of the whole object and the verifiers need no change
(tests/audit/test_append_sql.py compares both paths on the same inputs).

A listener of audit_record may say when it is wanted (`on_record(listener, wanted=...)`): its question, an
EXISTS query, runs inside the function after the head moved, so that a listener with nothing to do (no
webhook subscription for the event, the usual case) costs no round trip.

At commit (audit_defer): an event that nothing in its transaction needs to see positioned (no listener is
called for it: no webhook subscription could want it, no e-mail is written for its action) is not appended
where it is recorded. audit_defer() writes its columns and body halves to `audit_pending`, an unlogged table
whose rows live only inside their transaction, and a deferred constraint trigger appends every pending event
of the transaction when it commits, in the order they were recorded: the head lock is then taken inside the
COMMIT and held only until its WAL flush, instead of from the append through the client's return, its
listeners and its COMMIT round trip. Positions stay gapless in commit order and the bytes are the same
(the same splicing, in audit_put). An append made at once in a transaction that has pending events first
appends those, so a transaction's events keep the order they were recorded in. A rolled-back transaction or
savepoint takes its pending rows with it. When a listener's question says it wants the event, audit_defer
appends at once, as audit_append.
"""

from __future__ import annotations

FUNCTION = "audit_append"

# The event's columns (in) and what the append stored (out): audit_put, audit_append, audit_defer.
EVENT_PARAMETERS = (
    "    p_before bytea, p_after bytea, p_actor_id bigint, p_actor_repr text, p_actor_kind text,"
    " p_action text,\n"
    "    p_target_kind text, p_target_id text, p_target_repr text, p_asset_id bigint, p_changes jsonb,\n"
    "    p_source text, p_context jsonb"
)
EVENT_RESULTS = (
    "    OUT event_id bigint, OUT event_seq bigint, OUT event_time timestamptz, OUT event_body bytea,\n"
    "    OUT event_leaf bytea, OUT event_chain bytea"
)

CREATE = f"""
CREATE OR REPLACE FUNCTION audit_format_time(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
CREATE UNLOGGED TABLE IF NOT EXISTS audit_pending (
    id bigserial PRIMARY KEY,
    before bytea NOT NULL, after bytea NOT NULL, actor_id bigint, actor_repr text NOT NULL,
    actor_kind text NOT NULL, action text NOT NULL, target_kind text NOT NULL, target_id text NOT NULL,
    target_repr text NOT NULL, asset_id bigint, changes jsonb NOT NULL, source text NOT NULL,
    context jsonb NOT NULL
);
-- One event at the position after (p_seq, p_chain), whose lock the caller holds; the caller moves the head.
CREATE OR REPLACE FUNCTION audit_put(
    p_seq bigint, p_chain bytea,
{EVENT_PARAMETERS},
{EVENT_RESULTS}
) LANGUAGE plpgsql AS $$
BEGIN
    -- The clock is read once the lock is held (now() is the transaction's start), so time follows seq.
    event_time := clock_timestamp();
    event_seq := p_seq + 1;
    event_body := p_before
        || convert_to(
            ',"occurred_at":"' || audit_format_time(event_time) || '","seq":' || event_seq::text || ',',
            'UTF8')
        || p_after;
    event_leaf := sha256('\\x00'::bytea || event_body);
    event_chain := sha256('\\x02'::bytea || p_chain || event_leaf);
    INSERT INTO audit_auditevent (
        seq, occurred_at, actor_id, actor_repr, actor_kind, action, target_kind, target_id, target_repr,
        asset_id, changes, source, context, body, leaf_hash, chain_hash)
    VALUES (
        event_seq, event_time, p_actor_id, p_actor_repr, p_actor_kind, p_action, p_target_kind, p_target_id,
        p_target_repr, p_asset_id, p_changes, p_source, p_context, event_body, event_leaf, event_chain)
    RETURNING id INTO event_id;
END $$;
-- One pending event appended at the head, whose lock it takes (held until the transaction ends).
CREATE OR REPLACE FUNCTION audit_put_pending(r audit_pending) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_chain bytea;
    put record;
BEGIN
    -- The head lock serialises appends until commit: positions are gapless and the chain cannot fork.
    SELECT seq, chain_hash INTO STRICT head_seq, head_chain FROM audit_audithead WHERE id = 1 FOR UPDATE;
    SELECT * INTO STRICT put FROM audit_put(
        head_seq, head_chain, r.before, r.after, r.actor_id, r.actor_repr, r.actor_kind, r.action,
        r.target_kind, r.target_id, r.target_repr, r.asset_id, r.changes, r.source, r.context);
    UPDATE audit_audithead SET seq = put.event_seq, chain_hash = put.event_chain WHERE id = 1;
END $$;
-- Append the transaction's pending events now, in the order they were recorded. A transaction sees no
-- pending row but its own: the others' are uncommitted, and none outlives the commit of its transaction.
CREATE OR REPLACE FUNCTION audit_flush_pending() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r audit_pending%ROWTYPE;
BEGIN
    IF coalesce(current_setting('audit.pending', true), '') <> 'yes' THEN
        RETURN;  -- nothing deferred in this transaction (or its deferring savepoints rolled back)
    END IF;
    FOR r IN SELECT * FROM audit_pending ORDER BY id LOOP
        DELETE FROM audit_pending WHERE id = r.id;
        PERFORM audit_put_pending(r);
    END LOOP;
    PERFORM set_config('audit.pending', 'no', true);
END $$;
-- At COMMIT, once per pending row, in the order the rows were inserted (deferred triggers fire in that
-- order); a row that an append made at once has taken already is gone.
CREATE OR REPLACE FUNCTION audit_pending_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM audit_pending WHERE id = NEW.id;
    IF FOUND THEN
        PERFORM audit_put_pending(NEW);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS audit_pending_at_commit ON audit_pending;
CREATE CONSTRAINT TRIGGER audit_pending_at_commit AFTER INSERT ON audit_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_pending_commit();
CREATE OR REPLACE FUNCTION audit_append(
{EVENT_PARAMETERS}, p_checks text[],
{EVENT_RESULTS}, OUT event_wanted boolean[]
) LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_chain bytea;
    check_sql text;
    found boolean;
BEGIN
    PERFORM audit_flush_pending();  -- the transaction's earlier events keep their place before this one
    -- The head lock serialises appends until commit: positions are gapless and the chain cannot fork.
    SELECT seq, chain_hash INTO STRICT head_seq, head_chain FROM audit_audithead WHERE id = 1 FOR UPDATE;
    SELECT * INTO STRICT event_id, event_seq, event_time, event_body, event_leaf, event_chain FROM audit_put(
        head_seq, head_chain, p_before, p_after, p_actor_id, p_actor_repr, p_actor_kind, p_action,
        p_target_kind, p_target_id, p_target_repr, p_asset_id, p_changes, p_source, p_context);
    UPDATE audit_audithead SET seq = event_seq, chain_hash = event_chain WHERE id = 1;
    -- The listeners' questions (does anything want this event?), each a query of its own with a snapshot
    -- taken now, under the lock: what committed before this event's position is seen, as it would be by
    -- a query sent after this statement.
    event_wanted := ARRAY[]::boolean[];
    FOREACH check_sql IN ARRAY coalesce(p_checks, ARRAY[]::text[]) LOOP
        EXECUTE check_sql INTO found;
        event_wanted := event_wanted || coalesce(found, false);
    END LOOP;
END $$;
-- The writer's one statement for an event positioned at commit: the listeners' questions first (without
-- the lock); if one wants the event it is appended at once (audit_append), else it waits in audit_pending.
CREATE OR REPLACE FUNCTION audit_defer(
{EVENT_PARAMETERS}, p_checks text[],
{EVENT_RESULTS}, OUT event_wanted boolean[]
) LANGUAGE plpgsql AS $$
DECLARE
    check_sql text;
    found boolean;
BEGIN
    FOREACH check_sql IN ARRAY coalesce(p_checks, ARRAY[]::text[]) LOOP
        EXECUTE check_sql INTO found;
        IF coalesce(found, false) THEN
            SELECT * INTO STRICT event_id, event_seq, event_time, event_body, event_leaf, event_chain,
                event_wanted
            FROM audit_append(
                p_before, p_after, p_actor_id, p_actor_repr, p_actor_kind, p_action, p_target_kind,
                p_target_id, p_target_repr, p_asset_id, p_changes, p_source, p_context, p_checks);
            RETURN;
        END IF;
    END LOOP;
    INSERT INTO audit_pending (
        before, after, actor_id, actor_repr, actor_kind, action, target_kind, target_id, target_repr,
        asset_id, changes, source, context)
    VALUES (
        p_before, p_after, p_actor_id, p_actor_repr, p_actor_kind, p_action, p_target_kind, p_target_id,
        p_target_repr, p_asset_id, p_changes, p_source, p_context);
    -- Transaction-local: a rolled-back savepoint takes it back with its rows.
    PERFORM set_config('audit.pending', 'yes', true);
    event_wanted := array_fill(false, ARRAY[coalesce(cardinality(p_checks), 0)]);
END $$;
"""

_ARG_TYPES = "bytea, bytea, bigint, text, text, text, text, text, text, bigint, jsonb, text, jsonb"
DROP = (
    f"DROP FUNCTION IF EXISTS audit_defer({_ARG_TYPES}, text[]); "
    f"DROP FUNCTION IF EXISTS audit_append({_ARG_TYPES}, text[]); "
    "DROP FUNCTION IF EXISTS audit_put_pending(audit_pending); "
    "DROP TABLE IF EXISTS audit_pending; "
    "DROP FUNCTION IF EXISTS audit_pending_commit(); "
    "DROP FUNCTION IF EXISTS audit_flush_pending(); "
    f"DROP FUNCTION IF EXISTS audit_put(bigint, bytea, {_ARG_TYPES}); "
    "DROP FUNCTION IF EXISTS audit_format_time(timestamptz)"
)

_ARGS = "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s::text[]"
CALL = f"SELECT * FROM {FUNCTION}({_ARGS})"
CALL_AT_COMMIT = f"SELECT * FROM audit_defer({_ARGS})"


def install(connection) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(CREATE)


def remove(connection) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(DROP)
