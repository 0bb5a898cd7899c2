"""Two views that only do their queries: the bearer token's row (one indexed SELECT, hash compared), then
the write (the next version inserted and the asset's latest number moved, one statement) or the read (the
version in a stage, one SELECT). No permission rule, no audit event, no validation beyond the JSON."""

import hashlib
import hmac
import json

from django.db import connection, transaction
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

TOKEN = "SELECT account_id, hashed FROM accounts_apitoken WHERE lookup = %s"
REGISTER_PG = """
WITH a AS (
    SELECT id, latest_version_number FROM registry_asset WHERE kind = %s AND name = %s FOR UPDATE
), v AS (
    INSERT INTO registry_assetversion (asset_id, number, description, tags, digest, uri, metadata, origin,
        framework, metrics, params, signature, model_card, template, variables, model_config, commit_message,
        row_count, schema, created_by_id, created_at)
    SELECT a.id, a.latest_version_number + 1, '', '[]', %s, '', '{}', '{}', '', %s::jsonb, '{}', '{}', '',
        '', '[]', '{}', '', NULL, '{}', %s, now() FROM a
    RETURNING id, asset_id, number, created_at
), u AS (
    UPDATE registry_asset SET latest_version_number = v.number FROM v WHERE registry_asset.id = v.asset_id
)
SELECT id, number, created_at FROM v
"""
RESOLVE = """
SELECT v.number, v.digest, v.uri, v.metrics, p.updated_at FROM registry_stagepointer p
JOIN registry_asset a ON a.id = p.asset_id JOIN registry_stage s ON s.id = p.stage_id
JOIN registry_assetversion v ON v.id = p.version_id WHERE a.kind = %s AND a.name = %s AND s.name = %s
"""


def account(request):
    token = request.META.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
    with connection.cursor() as cursor:
        cursor.execute(TOKEN, [token.split("_")[1] if token.count("_") == 2 else ""])
        row = cursor.fetchone()
    if row is None or not hmac.compare_digest(row[1], hashlib.sha256(token.encode()).hexdigest()):
        return None
    return row[0]


def register(cursor, kind, name, digest, metrics, account_id):
    if connection.vendor == "postgresql":
        cursor.execute(REGISTER_PG, [kind, name, digest, json.dumps(metrics), account_id])
        return cursor.fetchone()
    with transaction.atomic():  # SQLite: no FOR UPDATE and no INSERT in WITH; its write lock serialises
        cursor.execute(
            "SELECT id, latest_version_number FROM registry_asset WHERE kind = %s AND name = %s", [kind, name]
        )
        asset_id, latest = cursor.fetchone()
        cursor.execute(
            "INSERT INTO registry_assetversion (asset_id, number, description, tags, digest, uri, metadata,"
            " origin, framework, metrics, params, signature, model_card, template, variables, model_config,"
            " commit_message, row_count, schema, created_by_id, created_at) VALUES (%s, %s, '', '[]', %s, '',"
            " '{}', '{}', '', %s, '{}', '{}', '', '', '[]', '{}', '', NULL, '{}', %s, datetime('now'))",
            [asset_id, latest + 1, digest, json.dumps(metrics), account_id],
        )
        cursor.execute(
            "UPDATE registry_asset SET latest_version_number = %s WHERE id = %s", [latest + 1, asset_id]
        )
        return cursor.lastrowid, latest + 1, None


class Versions(APIView):
    def post(self, request, kind, name):
        account_id = account(request)
        if account_id is None:
            return Response(status=401)
        with connection.cursor() as cursor:
            row = register(
                cursor,
                kind.rstrip("s"),
                name,
                request.data["digest"],
                request.data.get("metrics", {}),
                account_id,
            )
        return Response({"id": row[0], "version": row[1], "created_at": row[2]}, status=201)


class Stage(APIView):
    def get(self, request, kind, name, stage):
        if account(request) is None:
            return Response(status=401)
        with connection.cursor() as cursor:
            cursor.execute(RESOLVE, [kind.rstrip("s"), name, stage])
            row = cursor.fetchone()
        if row is None:
            return Response(status=404)
        number, digest, uri, metrics, updated_at = row
        metrics = json.loads(metrics) if isinstance(metrics, str) else metrics
        return Response(
            {"version": number, "digest": digest, "uri": uri, "metrics": metrics, "since": updated_at}
        )


def healthz(request):
    from django.http import HttpResponse

    return HttpResponse("ok")


urlpatterns = [
    path("healthz", healthz),
    path("api/v1/<str:kind>/<str:name>/versions", Versions.as_view()),
    path("api/v1/<str:kind>/<str:name>/stages/<str:stage>", Stage.as_view()),
]
