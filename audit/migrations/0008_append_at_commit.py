from django.db import migrations

# audit_append as migration 0007 installed it (before it appended the transaction's pending events first).
APPEND_0007 = """
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

AT_COMMIT_OBJECTS = (
    "DROP FUNCTION IF EXISTS audit_defer("
    "bytea, bytea, bigint, text, text, text, text, text, text, bigint, jsonb, text, jsonb, text[]); "
    "DROP FUNCTION IF EXISTS audit_put_pending(audit_pending); "
    "DROP TABLE IF EXISTS audit_pending; "
    "DROP FUNCTION IF EXISTS audit_pending_commit(); "
    "DROP FUNCTION IF EXISTS audit_flush_pending(); "
    "DROP FUNCTION IF EXISTS audit_put("
    "bigint, bytea, bytea, bytea, bigint, text, text, text, text, text, text, bigint, jsonb, text, jsonb)"
)


def install(apps, schema_editor):
    from audit import appender

    appender.install(schema_editor.connection)


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(APPEND_0007)
            cursor.execute(AT_COMMIT_OBJECTS)


class Migration(migrations.Migration):
    """Events positioned at commit on PostgreSQL (audit.appender: audit_defer, audit_pending and its deferred
    trigger); nothing on SQLite."""

    dependencies = [("audit", "0007_append_function")]
    operations = [migrations.RunPython(install, remove)]
