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
"""

from __future__ import annotations

FUNCTION = "audit_append"

CREATE = """
CREATE OR REPLACE FUNCTION audit_format_time(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
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
    -- The head lock serialises appends until commit: positions are gapless and the chain cannot fork.
    SELECT seq, chain_hash INTO STRICT head_seq, head_chain FROM audit_audithead WHERE id = 1 FOR UPDATE;
    -- The clock is read once the lock is held (now() is the transaction's start), so time follows seq.
    event_time := clock_timestamp();
    event_seq := head_seq + 1;
    event_body := p_before
        || convert_to(
            ',"occurred_at":"' || audit_format_time(event_time) || '","seq":' || event_seq::text || ',',
            'UTF8')
        || p_after;
    event_leaf := sha256('\\x00'::bytea || event_body);
    event_chain := sha256('\\x02'::bytea || head_chain || event_leaf);
    INSERT INTO audit_auditevent (
        seq, occurred_at, actor_id, actor_repr, actor_kind, action, target_kind, target_id, target_repr,
        asset_id, changes, source, context, body, leaf_hash, chain_hash)
    VALUES (
        event_seq, event_time, p_actor_id, p_actor_repr, p_actor_kind, p_action, p_target_kind, p_target_id,
        p_target_repr, p_asset_id, p_changes, p_source, p_context, event_body, event_leaf, event_chain)
    RETURNING id INTO event_id;
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
"""

DROP = (
    "DROP FUNCTION IF EXISTS audit_append("
    "bytea, bytea, bigint, text, text, text, text, text, text, bigint, jsonb, text, jsonb, text[]); "
    "DROP FUNCTION IF EXISTS audit_format_time(timestamptz)"
)

CALL = (
    f"SELECT * FROM {FUNCTION}(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s::text[])"
)


def install(connection) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(CREATE)


def remove(connection) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(DROP)
