"""Server-rendered auditor pages: the event log, an asset's timeline, and the log's integrity.

Readable by auditors and registry admins only. Lists page by keyset on `seq` (never OFFSET, never COUNT(*)):
the log grows without bound and a page must cost the same at event ten and at event ten million.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from audit.models import Action, AuditEvent, AuditHead, Checkpoint, VerificationRun
from audit.signing import verifier_key
from audit.verification import verify_log
from audit.web.filters import SIGN_IN, AuditEventFilter, action_groups
from core.web import page_errors
from registry.models import AssetKind
from registry.selectors import asset_get_for_user

PAGE_SIZE = 50
MAX_SEQ = 2**63 - 1
RUNS_SHOWN = 20
FILTERS = ("since", "until", "actor", "action", "asset", "asset_kind", "asset_name")  # the export API's names
EXPORTS = ("bundle", "jsonl", "csv")
# What a row of the list shows; the hashed body and the hashes stay in the database (see the exports).
LIST_COLUMNS = (
    "seq",
    "occurred_at",
    "actor_repr",
    "actor_kind",
    "action",
    "target_kind",
    "target_id",
    "target_repr",
    "asset_id",
    "changes",
    "source",
    "context",
)


def auditor_required(view):
    """Only auditors and registry admins read the audit log; anyone else signed in gets 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not getattr(request.user, "reads_everything", False):  # the rule: accounts.permissions
            raise PermissionDenied("Only auditors and registry admins may read the audit log.")
        return view(request, *args, **kwargs)

    return wrapper


# Reading events -------------------------------------------------------------------------------------------


def _filter_params(query) -> list[tuple[str, str]]:
    """The page's filters under the export API's names, as (name, value) pairs in a stable order.

    Sign-ins are excluded unless the query says otherwise: `exclude` absent means the default, and
    `exclude=` (empty, which the form and the toggle always send) an explicit "exclude nothing".
    """
    pairs = [(name, query.get(name, "").strip()) for name in FILTERS]
    pairs = [(name, value) for name, value in pairs if value]
    excluded = [value for value in query.getlist("exclude") if value] if "exclude" in query else [SIGN_IN]
    pairs += [("exclude", value) for value in dict.fromkeys(excluded)]
    return pairs


def _with(pairs: list[tuple[str, str]], **changes) -> list[tuple[str, str]]:
    """pairs with some names replaced; an empty exclude list is kept as `exclude=` (not the default)."""
    kept = [(name, value) for name, value in pairs if name not in changes]
    for name, values in changes.items():
        kept += [(name, value) for value in values] or ([(name, "")] if name == "exclude" else [])
    return kept


def _page_pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs for links to this page: an explicit empty exclusion stays explicit."""
    if any(name == "exclude" for name, _ in pairs):
        return pairs
    return [*pairs, ("exclude", "")]


def _seq(raw: str | None) -> int | None:
    # Capped to the column's range: a forged key must page to nothing, not fail the query.
    # ASCII digits only: str.isdigit() also accepts '²', which int() refuses (as it refuses 5,000 digits).
    if not (raw and raw.isascii() and raw.isdigit()):
        return None
    return MAX_SEQ if len(raw) > len(str(MAX_SEQ)) else min(int(raw), MAX_SEQ)


def _page(events, query) -> tuple[list[AuditEvent], int | None, int | None]:
    """One page of events, newest first, with the keys of the next older and newer pages (or None).

    One query: a page is read with one row more than it shows, which tells whether there is more.
    """
    events = events.only(*LIST_COLUMNS)
    after = _seq(query.get("after"))
    if after is not None:  # walking towards the newest: read upwards, show newest first
        rows = list(events.filter(seq__gt=after).order_by("seq")[: PAGE_SIZE + 1])
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        newer = rows[0].seq if more else None
        older = rows[-1].seq if rows else after + 1
        return rows, older, newer
    before = _seq(query.get("before"))
    if before is not None:
        events = events.filter(seq__lt=before)
    rows = list(events.order_by("-seq")[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    older = rows[-1].seq if more else None
    newer = (rows[0].seq if rows else before - 1) if before is not None else None
    return rows, older, newer


def _shown(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def change_rows(changes: dict) -> tuple[list[tuple[str, str | None, str | None]], list[tuple[str, str]]]:
    """An event's changes for people: (field, before, after) rows, and (key, value) rows for the rest.

    `None` in a before/after cell means the field was absent on that side (e.g. a creation has no before).
    """
    if not isinstance(changes, dict):
        return [], [("changes", _shown(changes))]
    before, after = changes.get("before"), changes.get("after")
    diff = []
    if isinstance(before, dict) or isinstance(after, dict):
        before = before if isinstance(before, dict) else {}
        after = after if isinstance(after, dict) else {}
        for key in dict.fromkeys([*before, *after]):
            diff.append(
                (
                    key,
                    _shown(before[key]) if key in before else None,
                    _shown(after[key]) if key in after else None,
                )
            )
    other = [
        (key, _shown(value))
        for key, value in changes.items()
        if not (key in ("before", "after") and isinstance(value, dict))
    ]
    return diff, other


def _decorate(events: list[AuditEvent]) -> list[AuditEvent]:
    for event in events:
        event.diff, event.notes = change_rows(event.changes)
        event.asset_ref = None
        if event.target_kind == "registry.asset" and "/" in event.target_repr:
            event.asset_ref = event.target_repr.split("/", 1)
    return events


def _form_values(pairs: list[tuple[str, str]], filterset: AuditEventFilter) -> dict:
    """What the filter inputs show: times as datetime-local wants them (UTC), an exact asset split in two."""
    values = dict(pairs)
    if asset := values.pop("asset", ""):
        kind, _, name = asset.partition("/")
        values |= {"asset_kind": kind, "asset_name": name}
    values["exclude"] = {value for name, value in pairs if name == "exclude"}
    if filterset.is_valid():
        for field in ("since", "until"):
            moment = filterset.form.cleaned_data.get(field)
            if moment:
                values[field] = moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return values


def _url(base: str, params) -> str:
    return f"{base}?{urlencode(params)}" if params else base


def _paging_urls(base: str, params, older: int | None, newer: int | None) -> dict:
    params = list(params.items()) if isinstance(params, dict) else params
    return {
        "older_url": _url(base, [*params, ("before", older)]) if older is not None else None,
        "newer_url": _url(base, [*params, ("after", newer)]) if newer is not None else None,
        "newest_url": _url(base, params),
    }


def export_urls(params) -> dict[str, str]:
    """Links to the streaming API export with the same filters as the page (session auth works there)."""
    base = reverse("audit-api:audit-export")
    pairs = params.items() if isinstance(params, dict) else params
    pairs = [(name, value) for name, value in pairs if value]
    return {kind: f"{base}?{urlencode([('format', kind), *pairs])}" for kind in EXPORTS}


@login_required
@require_GET
@auditor_required
def event_list(request):
    pairs = _filter_params(request.GET)
    data = QueryDict(mutable=True)
    for name, value in pairs:
        data.appendlist(name, value)
    filterset = AuditEventFilter(data, queryset=AuditEvent.objects.all())
    events, older, newer = [], None, None
    if filterset.is_valid():
        events, older, newer = _page(filterset.qs, request.GET)
    excluded = [value for name, value in pairs if name == "exclude"]
    others = [value for value in excluded if value != SIGN_IN]
    link_pairs = _page_pairs(pairs)
    base = reverse("audit:event-list")
    context = {
        "nav": "audit",
        "filtered": any(name != "exclude" for name, _ in pairs) or excluded != [SIGN_IN],
        "form": _form_values(pairs, filterset),
        "errors": filterset.errors,
        "actions": Action.values,
        "groups": action_groups(),
        "kinds": AssetKind.choices,
        "sign_ins_hidden": SIGN_IN in excluded,
        "sign_ins_toggle_url": _url(
            base, _with(pairs, exclude=others if SIGN_IN in excluded else [*excluded, SIGN_IN])
        ),
        "events": _decorate(events),
        "exports": export_urls(pairs),
        "export_filtered": bool(pairs),
        **_paging_urls(base, link_pairs, older, newer),
    }
    return render(request, "audit/event_list.html", context)


@login_required
@require_GET
@auditor_required
@page_errors
def asset_timeline(request, kind: str, name: str):
    if kind not in AssetKind.values:
        raise Http404
    asset = asset_get_for_user(user=request.user, kind=kind, name=name)
    events, older, newer = _page(AuditEvent.objects.filter(asset_id=asset.pk), request.GET)
    params = {"asset": f"{asset.kind}/{asset.name}"}
    context = {
        "nav": "audit",
        "asset": asset,
        "events": _decorate(events),
        "exports": export_urls(params),
        "list_url": _url(reverse("audit:event-list"), params),
        **_paging_urls(reverse("audit:asset-timeline", args=[asset.kind, asset.name]), {}, older, newer),
    }
    return render(request, "audit/asset_timeline.html", context)


# Integrity ------------------------------------------------------------------------------------------------


@login_required
@require_GET
@auditor_required
def integrity(request):
    checkpoint = Checkpoint.objects.order_by("-tree_size").first()
    try:
        key, key_problem = verifier_key(), ""
    except ImproperlyConfigured as exc:  # no signing key yet: say so instead of failing the page
        key, key_problem = "", str(exc)
    context = {
        "nav": "audit",
        "checkpoint": checkpoint,
        "root_hex": bytes(checkpoint.root_hash).hex() if checkpoint else "",
        "head": AuditHead.objects.values_list("seq", flat=True).filter(pk=1).first() or 0,
        "verifier_key": key,
        "key_problem": key_problem,
        "runs": list(VerificationRun.objects.order_by("-id")[:RUNS_SHOWN]),
    }
    return render(request, "audit/integrity.html", context)


@login_required
@require_POST
@auditor_required
def integrity_verify(request):
    result = verify_log()  # records a VerificationRun, whatever the outcome
    if result.ok:
        messages.success(
            request,
            f"The log verified: {result.events} events, {result.checkpoints} signed checkpoints.",
        )
    else:
        messages.error(request, f"Verification FAILED at seq {result.first_bad_seq}: {result.problem}")
    return redirect("audit:integrity")
