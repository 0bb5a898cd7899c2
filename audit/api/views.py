"""The audit API, for auditors and admins only: events, signed checkpoints, proofs, and exports."""

from __future__ import annotations

import base64

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, serializers
from rest_framework.response import Response
from rest_framework.settings import api_settings

from audit import export, log, merkle, witness
from audit.models import AuditEvent, Checkpoint
from audit.signing import verifier_key
from audit.web.filters import AuditEventFilter
from core.exceptions import Conflict, InvalidInput, NotFound
from core.pagination import CursorPagination
from core.parsers import ascii_int


class IsAuditorOrAdmin(permissions.BasePermission):
    message = "Only auditors and registry admins may read the audit log."

    def has_permission(self, request, view) -> bool:
        user = request.user
        # User.reads_everything asks the rule (accounts.permissions), which sits above audit.
        return bool(user and user.is_authenticated and user.reads_everything)


class SeqPagination(CursorPagination):
    ordering = "seq"


class TreeSizePagination(CursorPagination):
    ordering = "tree_size"


def b64(value) -> str:
    return base64.b64encode(bytes(value)).decode()


class EventOut(serializers.Serializer):
    seq = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_repr")
    actor_kind = serializers.CharField()
    action = serializers.CharField()
    target_kind = serializers.CharField()
    target_id = serializers.CharField()
    target = serializers.CharField(source="target_repr")
    asset_id = serializers.IntegerField(allow_null=True)
    changes = serializers.DictField()
    source = serializers.CharField()
    context = serializers.DictField()
    leaf_hash = serializers.SerializerMethodField()
    chain_hash = serializers.SerializerMethodField()
    body = serializers.SerializerMethodField(help_text="The exact canonical bytes that were hashed, base64.")

    def get_leaf_hash(self, event) -> str:
        return bytes(event.leaf_hash).hex()

    def get_chain_hash(self, event) -> str:
        return bytes(event.chain_hash).hex()

    def get_body(self, event) -> str:
        return b64(event.body)


class CheckpointOut(serializers.Serializer):
    tree_size = serializers.IntegerField()
    root_hash = serializers.CharField()
    note = serializers.CharField()
    created_at = serializers.DateTimeField()
    origin = serializers.CharField()
    verifier_key = serializers.CharField()


class CheckpointHistoryOut(serializers.Serializer):
    tree_size = serializers.IntegerField()
    root_hash = serializers.SerializerMethodField(help_text="base64")
    note = serializers.CharField(help_text="the signed note, exactly as the witness holds it")
    created_at = serializers.DateTimeField()
    witnessed = serializers.SerializerMethodField(
        help_text="whether the witness holds this checkpoint; null when no witness is configured"
    )

    def get_root_hash(self, checkpoint) -> str:
        return b64(checkpoint.root_hash)

    def get_witnessed(self, checkpoint) -> bool | None:
        return witness.holds(checkpoint.tree_size, bytes(checkpoint.root_hash))


class AuditView(generics.GenericAPIView):
    # The project's defaults (signed in, and a token only within its scopes), then the audit rule.
    permission_classes = [*api_settings.DEFAULT_PERMISSION_CLASSES, IsAuditorOrAdmin]
    pagination_class = None


def _checkpoint_body(checkpoint: Checkpoint) -> dict:
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": b64(checkpoint.root_hash),
        "note": checkpoint.note,
        "created_at": checkpoint.created_at,
        "origin": settings.AUDIT_LOG_ORIGIN,
        "verifier_key": verifier_key(),
    }


def _checkpoint_at(size: int | None) -> Checkpoint:
    checkpoints = Checkpoint.objects.order_by("-tree_size")
    checkpoint = checkpoints.filter(tree_size=size).first() if size is not None else checkpoints.first()
    if checkpoint is None:
        raise NotFound(
            f"No signed checkpoint{'' if size is None else f' at size {size}'}.", type="no-checkpoint"
        )
    return checkpoint


def _int(request, name: str, *, required: bool = False) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise InvalidInput.field(name, "is required")
        return None
    return ascii_int(raw, name)


class EventListView(AuditView):
    serializer_class = EventOut
    queryset = AuditEvent.objects.none()
    filterset_class = AuditEventFilter
    pagination_class = SeqPagination

    @extend_schema(responses=EventOut(many=True))
    def get(self, request):
        page = self.paginate_queryset(self.filter_queryset(AuditEvent.objects.all()))
        return self.get_paginated_response(EventOut(page, many=True).data)


class CheckpointView(AuditView):
    serializer_class = CheckpointOut

    def get(self, request):
        """The latest signed checkpoint, with the verifier key to check it."""
        return Response(_checkpoint_body(_checkpoint_at(None)))


class CheckpointListView(AuditView):
    serializer_class = CheckpointHistoryOut
    queryset = Checkpoint.objects.none()
    pagination_class = TreeSizePagination

    @extend_schema(responses=CheckpointHistoryOut(many=True))
    def get(self, request):
        """The history of signed checkpoints, oldest first, each marked whether the witness holds it."""
        page = self.paginate_queryset(Checkpoint.objects.all())
        return self.get_paginated_response(CheckpointHistoryOut(page, many=True).data)


class InclusionProofView(AuditView):
    serializer_class = serializers.Serializer

    @extend_schema(
        parameters=[
            OpenApiParameter("seq", int, required=True),
            OpenApiParameter("size", int, description="a checkpointed size (default: the latest)"),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        """RFC 6962 inclusion proof of event `seq` in the tree of a signed checkpoint."""
        seq = _int(request, "seq", required=True)
        checkpoint = _checkpoint_at(_int(request, "size"))
        if not 1 <= seq <= checkpoint.tree_size:
            raise InvalidInput.field("seq", f"must be between 1 and {checkpoint.tree_size}")
        event = AuditEvent.objects.get(seq=seq)
        hashes = log.hasher().inclusion_proof(seq - 1, checkpoint.tree_size)
        return Response(
            {
                "seq": seq,
                "index": seq - 1,
                "tree_size": checkpoint.tree_size,
                "leaf_hash": b64(event.leaf_hash),
                "body": b64(event.body),
                "hashes": [b64(h) for h in hashes],
                "checkpoint": checkpoint.note,
            }
        )


class ConsistencyProofView(AuditView):
    serializer_class = serializers.Serializer

    @extend_schema(
        parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request):
        """RFC 6962 consistency proof between two signed checkpoints: the log only grew."""
        first, second = _int(request, "from", required=True), _int(request, "to", required=True)
        if first > second:
            raise InvalidInput.field("from", "must not be larger than to")
        old, new = _checkpoint_at(first), _checkpoint_at(second)
        hashes = log.hasher().consistency_proof(old.tree_size, new.tree_size)
        if not merkle.verify_consistency(
            old.tree_size, new.tree_size, hashes, bytes(old.root_hash), bytes(new.root_hash)
        ):
            # The stored events no longer match what was signed: say so rather than serve a bad proof.
            raise Conflict(
                "The log does not match its signed checkpoints; run audit_verify.", type="log-inconsistent"
            )
        return Response(
            {
                "from": old.tree_size,
                "to": new.tree_size,
                "hashes": [b64(h) for h in hashes],
                "from_checkpoint": old.note,
                "to_checkpoint": new.note,
            }
        )


class ExportView(AuditView):
    serializer_class = serializers.Serializer
    filterset_class = AuditEventFilter
    CONTENT = {
        "csv": ("text/csv; charset=utf-8", "csv"),
        "jsonl": ("application/x-ndjson", "jsonl"),
        "bundle": ("application/zip", "zip"),
    }

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["csv", "jsonl", "bundle"])],
        responses={(200, "application/zip"): OpenApiTypes.BINARY},
    )
    def get(self, request):
        """Stream the log (or a filtered part of it) as CSV, JSON Lines or a verifiable bundle."""
        kind = request.query_params.get("format", "bundle")
        if kind not in self.CONTENT:
            raise InvalidInput.field("format", "must be csv, jsonl or bundle")
        if kind == "bundle" and (signing := log.signing_status()) != "ok":
            # A bundle signs a checkpoint first; say so before the stream starts rather than break it midway.
            raise Conflict(f"No bundle can be signed: audit signing {signing}", type="audit-signing-refused")
        filters = AuditEventFilter(request.query_params, queryset=AuditEvent.objects.none()).export_filters()
        content = {"csv": export.csv_rows, "jsonl": export.jsonl, "bundle": export.bundle}[kind](filters)
        content_type, extension = self.CONTENT[kind]
        response = StreamingHttpResponse(content, content_type=content_type)
        # The name says what the file holds (its filters), so that two exports never look alike.
        name = export.file_name(filters, extension, now=timezone.now(), derived=kind == "csv")
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        if kind == "csv":
            response["X-Audit-Notice"] = export.CSV_NOTICE
        return response
