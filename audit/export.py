"""Streaming exports of the audit log: CSV (a view for spreadsheets), JSON Lines, and a verifiable bundle.

Everything is generated in constant memory: events are read with a server-side cursor in chunks and the
zip bundle is written through a sink that hands its bytes on as soon as they exist.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from audit import log
from audit.models import AuditEvent, Checkpoint
from audit.signing import verifier_key

FORMAT = "model-registry-audit-export/v1"
CHUNK = 2000
VERIFIER_FILES = ("verify_bundle.py", "merkle.py", "notes.py")
CSV_NOTICE = (
    "NOT AUTHORITATIVE: a derived view for spreadsheets. The authoritative record is the JSON Lines or "
    "bundle export, whose lines are the exact bytes that were hashed and signed."
)


@dataclass(frozen=True)
class Filters:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    asset_id: int | None = None
    # Events of any of these assets (ids, or a subquery of ids): audit knows no asset table, its adapters
    # (audit.web.filters) resolve a partial name or a kind to ids and say what they asked in `extra`.
    asset_in: Iterable[int] | QuerySet | None = None
    actor: str | None = None
    action: str | None = None
    exclude_actions: tuple[str, ...] = ()
    target: tuple[str, str] | None = None  # (kind, id)
    extra: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        chosen = [self.since, self.until, self.asset_id, self.actor, self.action, self.target]
        return not any(chosen) and self.asset_in is None and not self.exclude_actions

    def describe(self) -> dict:
        described = {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "asset_id": self.asset_id,
            "actor": self.actor,
            "action": self.action,
            "target": ":".join(self.target) if self.target else None,
        }
        if self.exclude_actions:  # only when used: manifests of older exports keep their exact keys
            described["exclude_actions"] = list(self.exclude_actions)
        return {**described, **self.extra}


def _moment(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    if value.time() == dt.time(0):
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%dT%H%M%S" if value.second else "%Y-%m-%dT%H%M")


def _slug(text: str) -> str:
    """A piece of a file name: ASCII letters, digits, `.`, `_` and `-` only, never a path or a quote."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", text).strip("-") or "_"


def file_name(filters: Filters, extension: str, *, now: dt.datetime, derived: bool = False) -> str:
    """The download's name says what it holds: audit-all-<date> when complete, else the filters in order
    (asset, time range, action, actor, target, excluded actions), e.g.
    audit-model-fraud-2026-01-01..2026-02-01-promotion.approved.csv."""
    extra = filters.extra
    parts: list[str] = []
    if filters.complete:
        parts.append(f"all-{now.astimezone(dt.UTC):%Y-%m-%d}")
    if asset := extra.get("asset"):
        parts.append(asset)
    elif extra.get("asset_kind") or extra.get("asset_name"):
        parts.append("-".join(filter(None, [extra.get("asset_kind"), extra.get("asset_name")])))
    elif filters.asset_id:
        parts.append(f"asset{filters.asset_id}")
    if filters.since or filters.until:
        since = _moment(filters.since) if filters.since else ""
        until = _moment(filters.until) if filters.until else ""
        parts.append(f"{since}..{until}")
    if filters.action:
        parts.append(filters.action)
    if filters.actor:
        parts.append(f"by-{filters.actor}")
    if filters.target:
        parts.append(f"target-{filters.target[0]}-{filters.target[1]}")
    if filters.exclude_actions:
        parts.append("without-" + "-".join(extra.get("exclude") or filters.exclude_actions))
    name = "-".join(["audit", *(_slug(part) for part in parts)])[:180]
    return f"{name}{'-derived' if derived else ''}.{extension}"


def events(filters: Filters, *, up_to: int | None = None) -> QuerySet[AuditEvent]:
    queryset = AuditEvent.objects.order_by("seq")
    if filters.since:
        queryset = queryset.filter(occurred_at__gte=filters.since)
    if filters.until:
        queryset = queryset.filter(occurred_at__lt=filters.until)
    if filters.asset_id:
        queryset = queryset.filter(asset_id=filters.asset_id)
    if filters.asset_in is not None:
        queryset = queryset.filter(asset_id__in=filters.asset_in)
    if filters.actor:
        queryset = queryset.filter(actor_repr=filters.actor)
    if filters.action:
        queryset = queryset.filter(action=filters.action)
    if filters.exclude_actions:
        queryset = queryset.exclude(action__in=filters.exclude_actions)
    if filters.target:
        queryset = queryset.filter(target_kind=filters.target[0], target_id=filters.target[1])
    if up_to is not None:
        queryset = queryset.filter(seq__lte=up_to)
    return queryset


def by_seq(queryset: QuerySet[AuditEvent], *fields: str, chunk: int = CHUNK) -> Iterator[tuple]:
    """(seq, *fields) of the queryset's events in seq order, read in pages keyed on seq.

    Constant memory on both sides: a server-side cursor opened outside a transaction (WITH HOLD) would make
    PostgreSQL materialise the whole result before sending the first row.
    """
    last = 0
    while True:
        page = list(queryset.filter(seq__gt=last).order_by("seq").values_list("seq", *fields)[:chunk])
        if not page:
            return
        yield from page
        last = page[-1][0]


def jsonl(filters: Filters) -> Iterator[bytes]:
    """Each line is the exact canonical body of one event (JCS output never holds a raw newline)."""
    for _, body in by_seq(events(filters), "body"):
        yield bytes(body) + b"\n"


class _Echo:
    def write(self, value: str) -> str:
        return value


# A cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV Injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_HEADER = [
    "seq",
    "occurred_at",
    "actor",
    "actor_kind",
    "action",
    "target_kind",
    "target_id",
    "target",
    "source",
    "changes",
    "leaf_hash",
]


def spreadsheet_cell(value) -> str:
    """The value as text that a spreadsheet shows and never evaluates: a leading apostrophe disarms a formula.

    Every cell goes through here, not only names: event text (a failed sign-in's username, an evaluation's
    name, a description in `changes`) comes from callers, some of them anonymous.
    """
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def csv_rows(filters: Filters) -> Iterator[str]:
    """The header first (so that CSV readers take it as the header), the events, then the notice as a
    last row that starts with `#` (it also goes in the response's X-Audit-Notice header)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    columns = (
        "seq",
        "occurred_at",
        "actor_repr",
        "actor_kind",
        "action",
        "target_kind",
        "target_id",
        "target_repr",
        "source",
        "changes",
        "leaf_hash",
    )
    for row in by_seq(events(filters), *columns[1:]):  # columns[0] is seq
        values = list(row)
        values[1] = values[1].isoformat()
        values[9] = json.dumps(values[9], sort_keys=True, ensure_ascii=False)
        values[10] = bytes(values[10]).hex()
        yield writer.writerow([spreadsheet_cell(value) for value in values])
    yield writer.writerow([f"# {CSV_NOTICE}"])


class _Sink(io.RawIOBase):
    """A write-only, non-seekable stream: zipfile then writes data descriptors and never seeks back."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


class _Digesting:
    """Writes into a zip member while counting bytes and computing SHA-256 for the manifest."""

    def __init__(self, member) -> None:
        self.member, self.sha256, self.size = member, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.member.write(data)
        self.sha256.update(data)
        self.size += len(data)


def bundle(filters: Filters) -> Iterator[bytes]:
    """A zip that an auditor verifies offline with verify_bundle.py (stdlib and `cryptography` only).

    A complete export holds every event up to a freshly signed checkpoint and is checked by recomputing
    leaves, chain and Merkle roots; a filtered one holds an inclusion proof per event instead.
    """
    log.checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    checkpoint = Checkpoint.objects.order_by("-tree_size").first()
    sink = _Sink()
    manifest: dict[str, dict] = {}
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def add(name: str, content: Iterator[bytes]) -> Iterator[bytes]:
            with archive.open(name, "w", force_zip64=True) as member:
                digesting = _Digesting(member)
                for piece in content:
                    digesting.write(piece)
                    if len(sink.chunks) > 64:
                        yield sink.take()
            manifest[name] = {"sha256": digesting.sha256.hexdigest(), "bytes": digesting.size}
            yield sink.take()

        size = checkpoint.tree_size if checkpoint else 0
        yield from add("verifier-key.txt", iter([verifier_key().encode() + b"\n"]))
        if checkpoint is not None:
            yield from add("checkpoint.txt", iter([checkpoint.note.encode()]))
        selected = events(filters, up_to=size)
        yield from add(
            "entries.jsonl",
            (bytes(body) + b"\n" for _, body in by_seq(selected, "body")),
        )
        if filters.complete:
            yield from add("hashes.csv", _hashes(selected))
            for older in Checkpoint.objects.filter(tree_size__lt=size).order_by("tree_size").iterator():
                yield from add(f"checkpoints/{older.tree_size}.txt", iter([older.note.encode()]))
        else:
            yield from add("proofs.jsonl", _inclusion_proofs(selected, size))
        for name in VERIFIER_FILES:
            yield from add(f"verifier/{name}", iter([(Path(__file__).parent / name).read_bytes()]))
        description = {
            "format": FORMAT,
            "origin": settings.AUDIT_LOG_ORIGIN,
            "complete": filters.complete,
            "filters": filters.describe(),
            "tree_size": size,
            "root_hash": base64.b64encode(bytes(checkpoint.root_hash)).decode() if checkpoint else None,
            "events": selected.count(),
            "created_at": timezone.now().isoformat(),
            "files": manifest,
        }
        with archive.open("manifest.json", "w") as member:
            member.write(json.dumps(description, indent=2, sort_keys=True).encode() + b"\n")
    yield sink.take()


def _hashes(selected: QuerySet[AuditEvent]) -> Iterator[bytes]:
    yield b"seq,leaf_hash,chain_hash\n"
    for seq, leaf, chain in by_seq(selected, "leaf_hash", "chain_hash"):
        yield f"{seq},{bytes(leaf).hex()},{bytes(chain).hex()}\n".encode()


def _inclusion_proofs(selected: QuerySet[AuditEvent], size: int) -> Iterator[bytes]:
    tree = log.hasher()
    for (seq,) in by_seq(selected):
        hashes = [base64.b64encode(h).decode() for h in tree.inclusion_proof(seq - 1, size)]
        yield json.dumps({"seq": seq, "tree_size": size, "hashes": hashes}).encode() + b"\n"
