"""Registry pages: the asset list, an asset, one version with its lineage graph, two versions compared, and
the owner's actions (edit and archive the asset, put a version in an unprotected stage).

Small views: they fetch through `registry.selectors`, which decide visibility (an asset the user may not see
answers 404, exactly like one that does not exist), change only through `registry.services` (the same calls
as the API, with a web Source), and render. A refused change is shown in the form that was sent, with what was
typed kept; a change that succeeds redirects with a message (post/redirect/get). Every list on a page is
paginated or capped, so a page's query count does not grow with an asset's versions, evaluations or history.
"""

from __future__ import annotations

import json
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.permissions import reads_everything
from audit.models import Action
from core.exceptions import DomainError, Forbidden, NotFound
from core.templatetags.registry_tags import markdown
from core.web import format_number, page_errors, paginate, refusal_on_form, web_link, web_source
from registry import compare, lineage_svg, metric_chart, selectors, services
from registry.filters import AssetFilter
from registry.forms import ArchiveForm, AssetEditForm, AssetSearchForm, CompareForm, StageSetForm
from registry.models import AssetKind, AssetVersion, Relation, Stage
from registry.permissions import Role, effective_roles, require
from registry.sections import asset_sections, version_actions

ASSETS_PER_PAGE = 50
VERSIONS_PER_PAGE = 25
HISTORY_PER_PAGE = 20
EVALUATIONS_PER_PAGE = 20
RECENT_LIMIT = 50  # the version page shows this many of its latest stage moves and audit events
LINEAGE_DEPTH = 3
KEY_METRICS = 4
RELATION_LABELS = dict(Relation.choices)
ORIGIN_SHOWN = ("commit", "ref", "run_url")  # the source fields with a row of their own


# Helpers ------------------------------------------------------------------------------------------


_HEADING_TAG = re.compile(r"<(/?)h([1-6])>")


def _markdown(text: str, *, top: int) -> SafeString:
    """Sanitised Markdown (the `markdown` filter) with its headings moved down to start at level `top`.

    A model card's `# Title` must not become a second <h1> inside a section: headings stay in order.
    Only the tag names of the already-cleaned HTML change (nh3 leaves headings without attributes).
    """
    html = markdown(text)
    shift = top - 1
    return mark_safe(_HEADING_TAG.sub(lambda m: f"<{m[1]}h{min(int(m[2]) + shift, 6)}>", html))


def _latest(queryset, limit: int = RECENT_LIMIT) -> tuple[list, bool]:
    """The first `limit` rows, and whether there are more (one query: it fetches limit + 1)."""
    rows = list(queryset[: limit + 1])
    return rows[:limit], len(rows) > limit


def _shown_rows(mapping: dict | None) -> list[tuple[str, str]]:
    """(key, value in one line) rows of a stored dictionary, by key."""
    return [(key, compare.show_value(value)) for key, value in sorted((mapping or {}).items())]


def _pretty(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True) if value else ""


def _key_metrics(metrics: dict) -> list[tuple[str, str]]:
    return [(name, format_number(metrics[name])) for name in sorted(metrics)[:KEY_METRICS]]


def digest_short(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else digest[:19]


def _version_row(version: AssetVersion) -> dict:
    return {
        "version": version,
        "digest_short": digest_short(version.digest),
        "metrics": _key_metrics(version.metrics or {}),
        "more_metrics": max(len(version.metrics or {}) - KEY_METRICS, 0),
    }


# The asset list ---------------------------------------------------------------------------------


@login_required
@require_GET
def asset_list(request):
    """Assets the user may see: search, filters (kind, team, stage, risk tier), 50 a page."""
    stages = list(Stage.objects.all())
    teams = list(selectors.team_list_for_user(user=request.user))
    form = AssetSearchForm(request.GET, stages=stages, teams=teams)
    form.is_valid()  # an invalid filter is shown with its error and ignored
    filters = form.filters()
    assets = selectors.asset_search_for_user(user=request.user, kind=filters.get("kind"))
    assets = AssetFilter(data=filters, queryset=assets).qs  # kind is not one of its filters: ignored
    listing = paginate(request, assets, ASSETS_PER_PAGE)
    for asset in listing["rows"]:
        pointers = {pointer.stage_id: pointer.version for pointer in asset.stage_pointers.all()}
        asset.in_stages = [pointers.get(stage.pk) for stage in stages]
    context = {
        "nav": "registry",
        "form": form,
        "stages": stages,
        "listing": listing,
        "filtered": bool(filters),
    }
    return render(request, "registry/asset_list.html", context)


# One asset ----------------------------------------------------------------------------------------


CHART_VERSIONS = 50  # the metric chart shows at most the latest this many versions
RECENT_PROMOTIONS = 5


def _stages_of_versions(stages: list[dict]) -> dict[int, list]:
    """version id → the stages it is in now, in stage order (from the stage pointers already read)."""
    found: dict[int, list] = {}
    for item in stages:
        if item["pointer"]:
            found.setdefault(item["pointer"].version_id, []).append(item["stage"])
    return found


def _metric_chart(request, asset) -> dict:
    """The chosen metric (?metric=, default the first present) over the latest CHART_VERSIONS versions."""
    series = selectors.version_metric_series(asset=asset, limit=CHART_VERSIONS)
    names = metric_chart.metric_names(series)
    if not names:
        return {"names": [], "chart": None}
    chosen = request.GET.get("metric")
    metric = chosen if chosen in names else names[0]
    chart = metric_chart.render(
        series,
        metric,
        title=f"{metric} over the latest {len(series)} versions of {asset.kind}/{asset.name}",
        href=lambda number: reverse("registry:version-detail", args=[asset.kind, asset.name, number]),
    )
    return {"names": names, "chart": chart, "window": len(series), "limit": CHART_VERSIONS}


def _may_change(asset, roles: set, role: Role) -> bool:
    return role in roles and not asset.is_archived


def _asset_page(request, asset, *, edit_form=None, status: int = 200):
    """The asset page, with the edit form as sent when it was refused (its errors inline)."""
    versions = paginate(
        request, selectors.version_list(asset=asset).order_by("-number"), VERSIONS_PER_PAGE, "page"
    )
    stages = selectors.stage_pointer_list(asset=asset)
    in_stages = _stages_of_versions(stages)
    versions["rows"] = [
        {**_version_row(version), "stages": in_stages.get(version.pk, [])} for version in versions["rows"]
    ]
    roles = effective_roles(request.user, asset)
    if edit_form is None and _may_change(asset, roles, Role.MANAGE):
        edit_form = AssetEditForm.for_asset(asset, teams=selectors.team_names())
    sections = asset_sections(request=request, asset=asset, roles=roles)
    context = {
        "nav": "registry",
        "asset": asset,
        "description": _markdown(asset.description, top=3),
        "stages": stages,
        "versions": versions,
        "history": paginate(request, selectors.stage_history_list(asset=asset), HISTORY_PER_PAGE, "history"),
        "roles": [role.label for role in Role if role in roles],
        "metrics": _metric_chart(request, asset),
        "sections": sections,
        "version_actions": version_actions(asset=asset, roles=roles),
        "edit_form": edit_form,  # None unless the user may edit, or sent it and was refused
        # The grants page answers its managers, admins and auditors; the audit timeline auditors and admins.
        "may_see_grants": Role.MANAGE in roles or reads_everything(request.user),
        "may_see_timeline": reads_everything(request.user),
    }
    return render(request, "registry/asset_detail.html", context, status=status)


@login_required
@require_GET
@page_errors
def asset_detail(request, kind: AssetKind, name: str):
    """An asset: what it is, what is in each stage, its versions (with their stages, a metric chart and a
    picker of two to compare), its promotions, its stage history, and what its owner may do."""
    return _asset_page(request, selectors.asset_get_for_user(user=request.user, kind=kind, name=name))


@login_required
@require_POST
@page_errors
def asset_edit(request, kind: AssetKind, name: str):
    """Change the asset's description, team, risk tier or tags (asset_update, as the API's PATCH)."""
    asset = selectors.asset_get_for_user(user=request.user, kind=kind, name=name)
    require(request.user, asset, Role.MANAGE)  # 403 before the input is looked at
    form = AssetEditForm(request.POST, teams=selectors.team_names())
    if form.is_valid():
        data = dict(form.cleaned_data)
        try:
            data["team"] = selectors.team_get_or_invalid(name=data["team"]) if data["team"] else None
            services.asset_update(actor=request.user, source=web_source(request), asset=asset, **data)
        except (Forbidden, NotFound):
            raise
        except DomainError as exc:
            refusal_on_form(form, exc)
        else:
            messages.success(request, f"{asset} is saved.")
            return redirect("registry:asset-detail", asset.kind, asset.name)
    return _asset_page(request, asset, edit_form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
@page_errors
def asset_archive(request, kind: AssetKind, name: str):
    """Archive the asset after a confirmation page (GET shows it; POST archives, asset_archive)."""
    asset = selectors.asset_get_for_user(user=request.user, kind=kind, name=name)
    if not _may_change(asset, effective_roles(request.user, asset), Role.MANAGE):
        raise Forbidden(f"You need the 'manage' role on an active {asset} to archive it.")
    form = ArchiveForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.asset_archive(
                actor=request.user,
                source=web_source(request),
                asset=asset,
                reason=form.cleaned_data["reason"],
            )
        except (Forbidden, NotFound):
            raise
        except DomainError as exc:
            refusal_on_form(form, exc)
        else:
            messages.success(request, f"{asset} is archived: it stays readable and takes no new versions.")
            return redirect("registry:asset-detail", asset.kind, asset.name)
    context = {"nav": "registry", "asset": asset, "form": form}
    return render(request, "registry/asset_archive.html", context, status=400 if form.is_bound else 200)


# One version ----------------------------------------------------------------------------------------


def _event_summary(event) -> str:
    """What an audit event changed, told with the version's own fields only.

    The raw `changes` can name other assets (a registration lists its lineage parents), which this user
    may not be allowed to see; the audit log's own pages show the full record to auditors.
    """
    changes = event.changes or {}
    if event.action == Action.VERSION_CREATED:
        after = changes.get("after", {})
        return f"registered as version {after.get('number', '?')}"
    if event.action == Action.VERSION_UPDATED:
        fields = ", ".join(sorted(changes.get("after", {})))
        return f"changed {fields}" if fields else "changed"
    return ""


def _evaluation_row(evaluation) -> dict:
    dataset = evaluation.dataset_version if evaluation.dataset_visible else None
    return {
        "evaluation": evaluation,
        "dataset": dataset,
        "dataset_hidden": evaluation.dataset_version_id is not None and dataset is None,
        "metrics": [(name, format_number(value)) for name, value in sorted(evaluation.metrics.items())],
    }


def _lineage_row(edge) -> dict:
    return {
        "parent": lineage_svg.node_label(edge.parent),
        "parent_url": lineage_svg.version_href(edge.parent),
        "relation": RELATION_LABELS.get(edge.relation, edge.relation),
        "child": lineage_svg.node_label(edge.child),
        "child_url": lineage_svg.version_href(edge.child),
    }


@login_required
@require_GET
@page_errors
def version_detail(request, kind: AssetKind, name: str, number: int):
    """A version: its content, evaluations, lineage graph, history (stage moves, audit events), and what
    its owner may do with it (put it in an unprotected stage, request a promotion)."""
    asset = selectors.asset_get_for_user(user=request.user, kind=kind, name=name)
    return _version_page(request, asset, selectors.version_get(asset=asset, number=number))


@login_required
@require_POST
@page_errors
def version_stage_set(request, kind: AssetKind, name: str, number: int):
    """Put this version in an unprotected stage (stage_set, as the API's PUT .../stages/<stage>)."""
    asset = selectors.asset_get_for_user(user=request.user, kind=kind, name=name)
    version = selectors.version_get(asset=asset, number=number)
    require(request.user, asset, Role.CONTRIBUTE)  # 403 before the input is looked at
    form = StageSetForm(request.POST, stages=selectors.unprotected_stage_names())
    if form.is_valid():
        try:
            stage = selectors.stage_get_or_invalid(name=form.cleaned_data["stage"])
            services.stage_set(
                actor=request.user,
                source=web_source(request),
                asset=asset,
                stage=stage,
                version=version,
                reason=form.cleaned_data["reason"],
            )
        except (Forbidden, NotFound):
            raise
        except DomainError as exc:
            refusal_on_form(form, exc, {"already-in-stage": "stage"})
        else:
            messages.success(request, f"{version} is now in {stage.name}.")
            return redirect("registry:version-detail", asset.kind, asset.name, version.number)
    return _version_page(request, asset, version, stage_form=form, status=400)


def _version_page(request, asset, version: AssetVersion, *, stage_form=None, status: int = 200):
    """The version page, with the stage form as sent when it was refused (its errors inline)."""
    roles = effective_roles(request.user, asset)
    if stage_form is None and _may_change(asset, roles, Role.CONTRIBUTE):
        stage_names = selectors.unprotected_stage_names()
        stage_form = StageSetForm(stages=stage_names) if stage_names else None
    evaluations = paginate(
        request,
        selectors.evaluation_list_for_user(user=request.user, version=version),
        EVALUATIONS_PER_PAGE,
        "evaluations",
    )
    evaluations["rows"] = [_evaluation_row(evaluation) for evaluation in evaluations["rows"]]
    upstream = selectors.lineage_for_user(
        user=request.user, version=version, direction="upstream", depth=LINEAGE_DEPTH
    )
    downstream = selectors.lineage_for_user(
        user=request.user, version=version, direction="downstream", depth=LINEAGE_DEPTH
    )
    graph = lineage_svg.render(version, upstream, downstream, depth=LINEAGE_DEPTH)
    moves, more_moves = _latest(selectors.version_stage_moves(version=version))
    events, more_events = _latest(selectors.version_audit_events(version=version))
    origin = dict(version.origin or {})
    context = {
        "nav": "registry",
        "asset": asset,
        "version": version,
        "in_stages": list(selectors.version_stages(version=version)),
        "description": _markdown(version.description, top=4),
        "model_card": _markdown(version.model_card, top=3),
        "row_count": f"{version.row_count:,}" if version.row_count is not None else "",
        "metrics": [(name, format_number(value)) for name, value in sorted((version.metrics or {}).items())],
        "params": _shown_rows(version.params),
        "model_config": _shown_rows(version.model_config),
        "signature": _pretty(version.signature),
        "schema": _pretty(version.schema),
        "metadata": _pretty(version.metadata),
        "origin": origin,
        "run_link": web_link(origin.get("run_url")),
        "origin_other": _shown_rows({key: value for key, value in origin.items() if key not in ORIGIN_SHOWN}),
        "evaluations": evaluations,
        "graph": graph,
        "lineage_rows": [_lineage_row(edge) for edge in graph.edges],
        "moves": moves,
        "more_moves": more_moves,
        "events": [{"event": event, "summary": _event_summary(event)} for event in events],
        "more_events": more_events,
        "previous_number": version.number - 1 if version.number > 1 else None,
        "stage_form": stage_form,  # None unless the user may use it, or sent it and was refused
        "version_actions": version_actions(asset=asset, roles=roles),
    }
    return render(request, "registry/version_detail.html", context, status=status)


# Two versions compared ------------------------------------------------------------------------------


@login_required
@require_GET
@page_errors
def version_compare(request, kind: AssetKind, name: str):
    """Two versions of an asset side by side: metric deltas, parameter and text diffs, digests."""
    asset = selectors.asset_get_for_user(user=request.user, kind=kind, name=name)
    latest = asset.latest_version_number
    comparison = None
    context = {"nav": "registry", "asset": asset}
    if not latest:
        form = CompareForm(latest=latest)
    else:
        picked = "a" in request.GET or "b" in request.GET
        form = CompareForm(request.GET if picked else {"a": max(latest - 1, 1), "b": latest}, latest=latest)
        if form.is_valid():
            a, b = form.cleaned_data["a"], form.cleaned_data["b"]
            found = selectors.version_pair(asset=asset, numbers=[a, b])
            if a in found and b in found:
                comparison = compare.version_comparison(asset.kind, found[b], found[a])
                context.update(base=found[a], other=found[b], current_label=f"v{a}", candidate_label=f"v{b}")
            else:
                form.add_error(None, "One of these versions does not exist.")
    context.update(form=form, comparison=comparison)
    status = 400 if form.is_bound and not form.is_valid() else 200
    return render(request, "registry/compare.html", context, status=status)
