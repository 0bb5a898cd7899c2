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

CREATE = """
CREATE OR REPLACE FUNCTION audit_format_time(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
CREATE UNLOGGED TABLE IF NOT EXISTS audit_pending (
    id bigserial PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    before bytea NOT NULL, after bytea NOT NULL, actor_id bigint, actor_repr text NOT NULL,
    actor_kind text NOT NULL, action text NOT NULL, target_kind text NOT NULL, target_id text NOT NULL,
    target_repr text NOT NULL, asset_id bigint, changes jsonb NOT NULL, source text NOT NULL,
    context jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_pending_xid ON audit_pending (xid);
-- One event at the position after (p_seq, p_chain), whose lock the caller holds; the caller moves the head.
CREATE OR REPLACE FUNCTION audit_put(
    p_seq bigint, p_chain bytea,
    p_before bytea, p_after bytea, p_actor_id bigint, p_actor_repr text, p_actor_kind text, p_action text,
    p_target_kind text, p_target_id text, p_target_repr text, p_asset_id bigint, p_changes jsonb,
    p_source text, p_context jsonb,
    OUT event_id bigint, OUT event_seq bigint, OUT event_time timestamptz, OUT event_body bytea,
    OUT event_leaf bytea, OUT event_chain bytea
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
-- Append the transaction's pending events, in the order they were recorded.
CREATE OR REPLACE FUNCTION audit_flush_pending() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    own xid8 := pg_current_xact_id_if_assigned();
    r audit_pending%ROWTYPE;
    head_seq bigint;
    head_chain bytea;
    put record;
BEGIN
    IF own IS NULL THEN
        RETURN;  -- a transaction that wrote nothing has nothing pending
    END IF;
    FOR r IN SELECT * FROM audit_pending WHERE xid = own ORDER BY id LOOP
        IF head_seq IS NULL THEN
            -- The head lock serialises appends until commit: positions are gapless, the chain cannot fork.
            SELECT seq, chain_hash INTO STRICT head_seq, head_chain
            FROM audit_audithead WHERE id = 1 FOR UPDATE;
        END IF;
        SELECT * INTO STRICT put FROM audit_put(
            head_seq, head_chain, r.before, r.after, r.actor_id, r.actor_repr, r.actor_kind, r.action,
            r.target_kind, r.target_id, r.target_repr, r.asset_id, r.changes, r.source, r.context);
        head_seq := put.event_seq;
        head_chain := put.event_chain;
        -- One event at a time, as the head's trigger (audit.triggers) requires.
        UPDATE audit_audithead SET seq = head_seq, chain_hash = head_chain WHERE id = 1;
    END LOOP;
    IF head_seq IS NOT NULL THEN
        DELETE FROM audit_pending WHERE xid = own;
    END IF;
END $$;
CREATE OR REPLACE FUNCTION audit_pending_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM audit_flush_pending();  -- the first pending row's trigger appends them all; the rest find none
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS audit_pending_at_commit ON audit_pending;
CREATE CONSTRAINT TRIGGER audit_pending_at_commit AFTER INSERT ON audit_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION audit_pending_commit();
CREATE OR REPLACE FUNCTION audit_append(
    p_before bytea, p_after bytea, p_actor_id bigint, p_actor_repr text, p_actor_kind text, p_action text,
    p_target_kind text, p_target_id text, p_target_repr text, p_asset_id bigint, p_changes jsonb,
    p_source text, p_context jsonb, p_checks text[],
    OUT event_id bigint, OUT event_seq bigint, OUT event_time timestamptz, OUT event_body bytea,
    OUT event_leaf bytea, OUT event_chain bytea, OUT event_wanted boolean[]
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
    p_before bytea, p_after bytea, p_actor_id bigint, p_actor_repr text, p_actor_kind text, p_action text,
    p_target_kind text, p_target_id text, p_target_repr text, p_asset_id bigint, p_changes jsonb,
    p_source text, p_context jsonb, p_checks text[],
    OUT event_id bigint, OUT event_seq bigint, OUT event_time timestamptz, OUT event_body bytea,
    OUT event_leaf bytea, OUT event_chain bytea, OUT event_wanted boolean[]
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
    event_wanted := array_fill(false, ARRAY[coalesce(cardinality(p_checks), 0)]);
END $$;
"""

_ARG_TYPES = "bytea, bytea, bigint, text, text, text, text, text, text, bigint, jsonb, text, jsonb"
DROP = (
    f"DROP FUNCTION IF EXISTS audit_defer({_ARG_TYPES}, text[]); "
    f"DROP FUNCTION IF EXISTS audit_append({_ARG_TYPES}, text[]); "
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
