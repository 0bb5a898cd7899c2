"""The asset page as the hub of an asset, and the owner's actions in the browser.

What the page shows (stage badges on version rows, open and recent promotions, links to grants and the audit
timeline for those who may follow them, a metric chart over versions, a picker of two versions to compare),
and each action (edit, archive, put a version in a stage, request a promotion or a rollback, withdraw a
request): it works for an allowed person with its audit event, it is hidden and refused (403) for others, and
bad input is shown inline with what was typed kept and nothing changed. Query counts are pinned.
"""

import re

import pytest
from django.contrib.auth.models import Group

from approvals.models import PromotionRequest, Status
from approvals.services import promotion_request
from audit.models import AuditEvent
from core.source import Source
from registry import metric_chart
from registry.models import Asset, Stage, StageHistory, StagePointer
from registry.services import stage_move
from tests.factories import PolicyFactory, PromotionFactory, UserFactory, VersionFactory, grant

pytestmark = pytest.mark.django_db
SRC = Source.cli()
PAGE = "/registry/model/fraud/"


def html_of(response) -> str:
    return response.content.decode()


def as_user(client, user):
    client.force_login(user)
    return client


def events(action: str) -> int:
    return AuditEvent.objects.filter(action=action).count()


@pytest.fixture
def stages():
    return Stage.objects.get(name="staging"), Stage.objects.get(name="production")


@pytest.fixture
def versions(fraud, admin):
    """fraud v1..v3 with metrics (v2 without latency)."""
    return [
        VersionFactory(asset=fraud, metrics={"auc": 0.90, "latency_ms": 40}, created_by=admin),
        VersionFactory(asset=fraud, metrics={"auc": 0.93}, created_by=admin),
        VersionFactory(asset=fraud, metrics={"auc": 0.95, "latency_ms": 55}, created_by=admin),
    ]


def put(version, stage, actor):
    from django.db import transaction

    with transaction.atomic():
        stage_move(actor=actor, source=SRC, asset=version.asset, stage=stage, version=version, reason="test")


def row(html: str, number: int) -> str:
    match = re.search(rf'<tr id="version-{number}">(.*?)</tr>', html, re.S)
    assert match, f"no row for v{number}"
    return match[1]


# What the page shows -------------------------------------------------------------------------------


def test_version_rows_carry_the_stages_they_are_in(client, viewer, versions, stages, admin):
    staging, production = stages
    put(versions[0], production, admin)
    put(versions[2], staging, admin)
    html = html_of(as_user(client, viewer).get(PAGE))
    assert '<span class="badge stage stage-production">production</span>' in row(html, 1)
    assert '<span class="badge stage stage-staging">staging</span>' in row(html, 3)
    assert "badge stage" not in row(html, 2)


def test_open_and_recently_decided_promotions_are_listed(client, viewer, versions, stages, admin):
    staging, production = stages
    pending = PromotionFactory(version=versions[2], stage=production, requested_by=admin)
    decided = [
        PromotionFactory(version=versions[1], stage=staging, requested_by=admin, status=Status.REJECTED)
        for _ in range(7)
    ]
    html = html_of(as_user(client, viewer).get(PAGE))
    open_table = html.split('id="open-promotions"')[1].split("</table>")[0]
    assert f'<a href="/promotions/{pending.pk}/">#{pending.pk}</a>' in open_table
    assert "v3 → production" in open_table
    decided_table = html.split('id="decided-promotions"')[1].split("</table>")[0]
    shown = re.findall(r'href="/promotions/(\d+)/"', decided_table)
    assert shown == [str(p.pk) for p in reversed(decided)][:5]  # the latest five, newest first
    assert "Rejected" in decided_table


def test_a_request_past_its_expiry_is_listed_as_expired(client, viewer, versions, stages, admin):
    from datetime import timedelta

    from django.utils import timezone

    _, production = stages
    late = PromotionFactory(
        version=versions[2],
        stage=production,
        requested_by=admin,
        expires_at=timezone.now() - timedelta(hours=1),
    )
    html = html_of(as_user(client, viewer).get(PAGE))
    assert f"/promotions/{late.pk}/" not in html.split('id="open-promotions-heading"')[1].split("<h3")[0]
    assert "Expired" in html.split('id="decided-promotions"')[1]


def test_what_a_promotion_needs_is_told_in_words(client, viewer, fraud, stages):
    staging, production = stages
    PolicyFactory(
        stage=production,
        required_approvals=2,
        gates=[{"type": "stage", "stage": "staging", "when": "current"}],
    )
    PolicyFactory(asset=fraud, stage=production, apply_on_approval=False)
    PolicyFactory(kind="prompt", stage=staging)  # another kind's: does not apply
    html = html_of(as_user(client, viewer).get(PAGE))
    policies = html.split('id="asset-policies"')[1].split("</dl>")[0]
    assert "<dt>production</dt>" in policies and "<dt>staging</dt>" not in policies
    assert "2 approvals from reviewers, gates: is in staging, applied by the requester" in policies


@pytest.mark.urls("tests.registry.urls_with_policy_page")
def test_the_policies_behind_the_words_are_linked_when_there_are_policy_pages(client, viewer, fraud, stages):
    _, production = stages
    everyone = PolicyFactory(stage=production)
    own = PolicyFactory(asset=fraud, stage=production)
    policies = html_of(as_user(client, viewer).get(PAGE)).split('id="asset-policies"')[1].split("</dl>")[0]
    assert f'<a href="/policies/{own.pk}/">policy for model/fraud</a>' in policies
    assert f'<a href="/policies/{everyone.pk}/">policy for every asset</a>' in policies


@pytest.mark.parametrize(
    ("persona", "grants", "timeline"),
    [("viewer", False, False), ("manager", True, False), ("admin", True, True), ("auditor", True, True)],
)
def test_links_to_grants_and_timeline_for_those_who_may_follow_them(
    request, client, versions, persona, grants, timeline
):
    user = request.getfixturevalue(persona)
    html = html_of(as_user(client, user).get(PAGE))
    assert ('href="/access/assets/model/fraud/"' in html) is grants
    assert ('href="/audit/assets/model/fraud/"' in html) is timeline
    assert 'href="#promotions-heading"' in html  # the promotions block, for everyone who sees the asset
    if grants:
        assert as_user(client, user).get("/access/assets/model/fraud/").status_code == 200
    if timeline:
        assert as_user(client, user).get("/audit/assets/model/fraud/").status_code == 200


def test_the_chart_draws_one_point_per_version_with_the_metric(client, viewer, versions):
    html = html_of(as_user(client, viewer).get(PAGE))
    svg = html.split('<svg class="metric-svg"')[1].split("</svg>")[0]
    assert 'data-metric="auc"' in svg  # the first metric present, by name
    assert 'role="group" aria-labelledby="chart-title" aria-describedby="chart-desc"' in svg
    assert '<title id="chart-title">auc over the latest 3 versions of model/fraud</title>' in svg
    assert '<desc id="chart-desc">auc of versions 1 to 3: v1 0.9, v2 0.93, v3 0.95.</desc>' in svg
    labels = re.findall(r'aria-label="(v\d+: auc [^"]+)"', svg)
    assert labels == ["v1: auc 0.9", "v2: auc 0.93", "v3: auc 0.95"]
    assert 'href="/registry/model/fraud/versions/3/"' in svg
    # The values are also in a table.
    table = html.split('id="chart-values"')[1].split("</table>")[0]
    assert re.findall(
        r'<th scope="row"><a href="[^"]+">v(\d+)</a></th><td class="num">([^<]+)</td>', table
    ) == [
        ("1", "0.9"),
        ("2", "0.93"),
        ("3", "0.95"),
    ]
    # The highest value is drawn highest (smallest y).
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert ys[2] < ys[1] < ys[0]


def test_the_chart_shows_the_metric_picked_and_skips_versions_without_it(client, viewer, versions):
    html = html_of(as_user(client, viewer).get(PAGE, {"metric": "latency_ms"}))
    svg = html.split('<svg class="metric-svg"')[1].split("</svg>")[0]
    assert re.findall(r'aria-label="(v\d+): latency_ms', svg) == ["v1", "v3"]
    assert "1 of them has no latency_ms" in html
    assert '<option value="latency_ms" selected>' in html and '<option value="auc">' in html
    unknown = html_of(as_user(client, viewer).get(PAGE, {"metric": "<script>"}))
    assert 'data-metric="auc"' in unknown and "<script>" not in unknown  # falls back to the first


def test_the_chart_is_bounded_to_the_latest_versions(client, viewer, fraud):
    for number in range(55):
        VersionFactory(asset=fraud, metrics={"auc": number / 100})
    html = html_of(as_user(client, viewer).get(PAGE))
    svg = html.split('<svg class="metric-svg"')[1].split("</svg>")[0]
    labels = re.findall(r'aria-label="v(\d+): auc', svg)
    assert len(labels) == 50 and labels[0] == "6" and labels[-1] == "55"


def test_no_chart_without_metrics(client, viewer, fraud):
    VersionFactory(asset=fraud, metrics={})
    assert "metric-svg" not in html_of(as_user(client, viewer).get(PAGE))


def test_the_chart_escapes_metric_names():
    series = [(1, {'a"<b>': 1.0}), (2, {'a"<b>': 2.0})]
    chart = metric_chart.render(series, 'a"<b>', title="t", href=lambda n: f"/v/{n}")
    assert "<b>" not in chart.svg and "&lt;b&gt;" in chart.svg


def test_the_compare_picker_leads_to_the_compare_page(client, viewer, versions):
    html = html_of(as_user(client, viewer).get(PAGE))
    form = html.split('<form id="compare-picker"')[1].split("</form>")[0]
    assert 'method="get" action="/registry/model/fraud/compare/"' in form
    assert '<input type="radio" name="a" value="2" aria-label="Base: v2" checked>' in form
    assert '<input type="radio" name="b" value="3" aria-label="Compare: v3" checked>' in form
    assert 'name="a" value="1"' in form and 'name="b" value="1"' in form
    compared = as_user(client, viewer).get("/registry/model/fraud/compare/", {"a": "1", "b": "3"})
    assert compared.status_code == 200 and "v1" in html_of(compared) and "v3" in html_of(compared)


@pytest.mark.parametrize("count", [3, 30])
def test_the_page_query_count_does_not_grow(
    client, manager, fraud, stages, admin, django_assert_max_num_queries, count
):
    staging, production = stages
    PolicyFactory(asset=fraud, stage=production)
    for number in range(count):
        version = VersionFactory(
            asset=fraud, metrics={"auc": 0.5 + number / 100, "f1": 0.4}, created_by=admin
        )
        put(version, staging, admin)
        PromotionFactory(version=version, stage=production, requested_by=admin, status=Status.REJECTED)
    PromotionFactory(version=version, stage=production, requested_by=admin)  # one open
    client.force_login(manager)
    # 1 session, 2 user, 3 asset, 4 stage pointers, 5 stages, 6 version count, 7 page of versions,
    # 8 history count, 9 page of history, 10 the manager's roles, 11 team names (edit form), 12 chart
    # series, 13 open promotions, 14 decided promotions, 15 the policies that apply (stage joined),
    # 16 their reviewer teams.
    # (and the header's inbox badge)
    with django_assert_max_num_queries(17):
        response = client.get(PAGE)
    assert response.status_code == 200
    assert html_of(response).count('<circle cx="') == count


# Editing the asset ---------------------------------------------------------------------------------


def test_a_manager_edits_the_asset(client, manager, fraud):
    Group.objects.create(name="risk")
    before = events("asset.updated")
    page = html_of(as_user(client, manager).get(PAGE))
    assert 'id="edit-form"' in page and 'name="csrfmiddlewaretoken"' in page
    data = {"description": "Scores **fraud**.", "team": "risk", "risk_tier": "high", "tags": "pii, payments"}
    response = as_user(client, manager).post(f"{PAGE}edit", data)
    assert response.status_code == 302 and response["Location"] == PAGE
    fraud.refresh_from_db()
    assert (fraud.description, fraud.team.name, fraud.risk_tier, fraud.tags) == (
        "Scores **fraud**.",
        "risk",
        "high",
        ["pii", "payments"],
    )
    assert events("asset.updated") == before + 1
    event = AuditEvent.objects.filter(action="asset.updated").latest("seq")
    assert event.source == "web"
    shown = html_of(as_user(client, manager).get(PAGE))
    assert "model/fraud is saved." in shown


def test_bad_edit_is_shown_inline_keeps_the_input_and_changes_nothing(client, manager, fraud):
    before = (fraud.description, fraud.tags, events("asset.updated"))
    long_tag = "x" * 51
    data = {"description": "typed text", "team": "", "risk_tier": "low", "tags": f"ok, {long_tag}"}
    response = as_user(client, manager).post(f"{PAGE}edit", data)
    assert response.status_code == 400
    html = html_of(response)
    assert 'id="edit_tags_error"' in html and "Each tag is 1-50 characters." in html
    assert "typed text</textarea>" in html and f'value="ok, {long_tag}"' in html
    assert '<details class="owner-action" id="edit-asset" open>' in html
    fraud.refresh_from_db()
    assert (fraud.description, fraud.tags, events("asset.updated")) == before
    bad_tier = as_user(client, manager).post(f"{PAGE}edit", {**data, "tags": "", "risk_tier": "extreme"})
    assert bad_tier.status_code == 400 and 'id="edit_risk_tier_error"' in html_of(bad_tier)


@pytest.mark.parametrize("persona", ["viewer", "contributor", "auditor"])
def test_editing_is_hidden_and_refused_for_others(request, client, fraud, persona):
    user = request.getfixturevalue(persona)
    page = html_of(as_user(client, user).get(PAGE))
    assert 'id="edit-form"' not in page and 'id="archive-link"' not in page
    response = as_user(client, user).post(f"{PAGE}edit", {"description": "mine", "risk_tier": "low"})
    assert response.status_code == 403
    assert as_user(client, user).post(f"{PAGE}archive", {}).status_code == 403
    fraud.refresh_from_db()
    assert fraud.description != "mine" and fraud.archived_at is None


def test_refusal_comes_before_input_is_looked_at(client, viewer, versions):
    assert as_user(client, viewer).post(f"{PAGE}edit", {"risk_tier": "extreme"}).status_code == 403
    bad_stage = as_user(client, viewer).post("/registry/model/fraud/versions/1/stage", {"stage": "nowhere"})
    assert bad_stage.status_code == 403


def test_a_change_to_an_archived_asset_is_refused_in_the_form(client, manager, fraud, versions):
    Asset.objects.filter(pk=fraud.pk).update(archived_at="2026-01-01T00:00:00Z")
    before = events("asset.updated")
    response = as_user(client, manager).post(f"{PAGE}edit", {"description": "late", "risk_tier": "low"})
    assert response.status_code == 400
    assert "is archived; it accepts no changes" in html_of(response)
    assert "late</textarea>" in html_of(response)
    staged = as_user(client, manager).post("/registry/model/fraud/versions/1/stage", {"stage": "staging"})
    assert staged.status_code == 400 and "is archived" in html_of(staged)
    assert events("asset.updated") == before and not StagePointer.objects.exists()


def test_actions_on_an_invisible_asset_answer_404(client, outsider, fraud):
    client.force_login(outsider)
    assert client.post(f"{PAGE}edit", {"risk_tier": "low"}).status_code == 404
    assert client.get(f"{PAGE}archive").status_code == 404
    assert client.post("/registry/model/fraud/versions/1/stage", {"stage": "staging"}).status_code == 404
    assert client.get("/promotions/new/model/fraud/").status_code == 404


# Archiving -----------------------------------------------------------------------------------------


def test_a_manager_archives_after_confirming(client, manager, fraud):
    confirm = as_user(client, manager).get(f"{PAGE}archive")
    assert confirm.status_code == 200
    assert 'id="archive-form"' in html_of(confirm) and "Keep it active" in html_of(confirm)
    fraud.refresh_from_db()
    assert fraud.archived_at is None  # showing the confirmation changes nothing
    response = as_user(client, manager).post(f"{PAGE}archive", {"reason": "retired"})
    assert response.status_code == 302 and response["Location"] == PAGE
    fraud.refresh_from_db()
    assert fraud.archived_at is not None
    event = AuditEvent.objects.filter(action="asset.archived").latest("seq")
    assert event.changes == {"reason": "retired"} and event.source == "web"
    page = html_of(as_user(client, manager).get(PAGE))
    assert "is archived" in page
    assert 'id="edit-form"' not in page and 'id="archive-link"' not in page  # nothing left to change
    assert as_user(client, manager).get(f"{PAGE}archive").status_code == 403


def test_wrong_methods_are_refused(client, manager, fraud):
    client.force_login(manager)
    assert client.get(f"{PAGE}edit").status_code == 405
    assert client.get("/registry/model/fraud/versions/1/stage").status_code == 405


def test_anonymous_goes_to_sign_in(client, fraud):
    for url in (f"{PAGE}edit", f"{PAGE}archive", "/promotions/new/model/fraud/"):
        response = client.post(url, {})
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# Putting a version in a stage ----------------------------------------------------------------------


def test_a_contributor_puts_a_version_in_staging(client, contributor, versions, stages):
    staging, _ = stages
    page = html_of(as_user(client, contributor).get("/registry/model/fraud/versions/2/"))
    form = page.split('<form id="stage-form"')[1].split("</form>")[0]
    assert (
        '<option value="staging">' in form and '<option value="production"' not in form
    )  # protected: not offered
    response = as_user(client, contributor).post(
        "/registry/model/fraud/versions/2/stage", {"stage": "staging", "reason": "try it"}
    )
    assert response.status_code == 302 and response["Location"] == "/registry/model/fraud/versions/2/"
    pointer = StagePointer.objects.get(asset=versions[0].asset, stage=staging)
    assert pointer.version == versions[1]
    move = StageHistory.objects.get(asset=versions[0].asset, stage=staging)
    assert (move.reason, move.source, move.actor) == ("try it", "web", contributor)
    assert AuditEvent.objects.filter(action="stage.set").latest("seq").source == "web"
    shown = html_of(as_user(client, contributor).get("/registry/model/fraud/versions/2/"))
    assert "model/fraud@2 is now in staging." in shown or "is now in staging" in shown


def test_a_protected_stage_or_the_same_version_is_refused_inline(
    client, contributor, versions, stages, admin
):
    staging, production = stages
    before = events("stage.set")
    protected = as_user(client, contributor).post(
        "/registry/model/fraud/versions/2/stage", {"stage": "production", "reason": "sneak"}
    )
    assert protected.status_code == 400
    assert 'id="stage_stage_error"' in html_of(protected) and 'value="sneak"' in html_of(protected)
    assert not StagePointer.objects.filter(stage=production).exists()
    put(versions[1], staging, admin)
    before = events("stage.set")
    again = as_user(client, contributor).post(
        "/registry/model/fraud/versions/2/stage", {"stage": "staging", "reason": "twice"}
    )
    assert again.status_code == 400
    assert "is already in staging" in html_of(again).split('id="stage_stage_error"')[1]
    assert events("stage.set") == before


def test_putting_in_a_stage_is_hidden_and_refused_for_viewers(client, viewer, versions):
    page = html_of(as_user(client, viewer).get("/registry/model/fraud/versions/2/"))
    assert 'id="stage-form"' not in page and "Request a promotion" not in page
    response = as_user(client, viewer).post("/registry/model/fraud/versions/2/stage", {"stage": "staging"})
    assert response.status_code == 403
    assert not StagePointer.objects.exists()


# Requesting a promotion, and a rollback ------------------------------------------------------------


@pytest.fixture
def owner(fraud, versions, stages, admin):
    """mia manages fraud; v2 is in production; production needs one approval."""
    _, production = stages
    PolicyFactory(asset=fraud, stage=production)
    put(versions[1], production, admin)
    person = UserFactory(username="mia")
    grant(person, fraud, "manage")
    return person


def test_the_asset_and_version_pages_link_to_the_request_page(client, owner):
    page = html_of(as_user(client, owner).get(PAGE))
    assert 'href="/promotions/new/model/fraud/?version=3"' in row(page, 3)
    assert 'id="request-promotion-link"' in page
    version_page = html_of(as_user(client, owner).get("/registry/model/fraud/versions/3/"))
    assert 'href="/promotions/new/model/fraud/?version=3"' in version_page
    form = html_of(as_user(client, owner).get("/promotions/new/model/fraud/", {"version": "3"}))
    assert '<option value="3" selected>v3</option>' in form
    assert "1 approval from reviewers" in form  # what production needs, in words
    assert 'name="csrfmiddlewaretoken"' in form


def test_an_owner_requests_a_promotion(client, owner, fraud):
    before = events("promotion.requested")
    response = as_user(client, owner).post(
        "/promotions/new/model/fraud/", {"version": "3", "stage": "production", "justification": "better auc"}
    )
    promotion = PromotionRequest.objects.get(asset=fraud)
    assert response.status_code == 302 and response["Location"] == f"/promotions/{promotion.pk}/"
    assert (promotion.version.number, promotion.stage.name, promotion.rollback) == (3, "production", False)
    assert events("promotion.requested") == before + 1
    assert AuditEvent.objects.filter(action="promotion.requested").latest("seq").source == "web"
    page = html_of(as_user(client, owner).get(response["Location"]))
    assert f"Promotion #{promotion.pk} requested" in page


def test_a_rollback_needs_its_box_ticked_and_keeps_what_was_typed(client, owner, fraud):
    refused = as_user(client, owner).post(
        "/promotions/new/model/fraud/",
        {"version": "1", "stage": "production", "justification": "v2 is broken"},
    )
    assert refused.status_code == 400
    html = html_of(refused)
    assert 'id="promote_rollback_error"' in html and "tick “This is a rollback”" in html
    assert "v2 is broken</textarea>" in html and '<option value="1" selected>v1</option>' in html
    assert not PromotionRequest.objects.exists()
    rolled = as_user(client, owner).post(
        "/promotions/new/model/fraud/",
        {"version": "1", "stage": "production", "justification": "v2 is broken", "rollback": "on"},
    )
    assert rolled.status_code == 302
    promotion = PromotionRequest.objects.get(asset=fraud)
    assert (promotion.version.number, promotion.rollback, promotion.base_version.number) == (1, True, 2)
    assert AuditEvent.objects.get(action="promotion.requested").changes["rollback"] is True


def test_request_errors_are_inline_and_change_nothing(client, owner, fraud):
    missing = as_user(client, owner).post(
        "/promotions/new/model/fraud/", {"version": "3", "stage": "production", "justification": ""}
    )
    assert missing.status_code == 400 and 'id="promote_justification_error"' in html_of(missing)
    same = as_user(client, owner).post(
        "/promotions/new/model/fraud/", {"version": "2", "stage": "production", "justification": "again"}
    )
    assert same.status_code == 400
    assert "is already in production" in html_of(same).split('id="promote_stage_error"')[1]
    no_policy = as_user(client, owner).post(
        "/promotions/new/model/fraud/", {"version": "3", "stage": "staging", "justification": "try"}
    )
    assert no_policy.status_code == 400 and "No policy governs" in html_of(no_policy)
    assert not PromotionRequest.objects.exists() and events("promotion.requested") == 0


def test_a_failing_gate_is_shown_above_the_form(client, owner, fraud, stages):
    _, production = stages
    policy = fraud.policies.get(stage=production)
    policy.gates = [{"type": "metric", "metric": "auc", "op": ">=", "value": 0.99, "source": "version"}]
    policy.save()
    response = as_user(client, owner).post(
        "/promotions/new/model/fraud/", {"version": "3", "stage": "production", "justification": "go"}
    )
    assert response.status_code == 400
    assert "Gates failed: auc &gt;= 0.99" in html_of(response).split('id="promotion-refusal"')[1]
    assert not PromotionRequest.objects.exists()


@pytest.mark.parametrize("persona", ["viewer", "contributor", "reviewer"])
def test_requesting_is_hidden_and_refused_without_the_role(request, client, owner, persona):
    user = request.getfixturevalue(persona)
    page = html_of(as_user(client, user).get(PAGE))
    assert "/promotions/new/" not in page
    assert as_user(client, user).get("/promotions/new/model/fraud/").status_code == 403
    body = {"version": "3", "stage": "production", "justification": "mine"}
    assert as_user(client, user).post("/promotions/new/model/fraud/", body).status_code == 403
    assert not PromotionRequest.objects.exists()


def test_a_requester_role_is_enough(client, owner, fraud):
    asker = UserFactory(username="asker")
    grant(asker, fraud, "request_promotion")
    response = as_user(client, asker).post(
        "/promotions/new/model/fraud/", {"version": "3", "stage": "production", "justification": "go"}
    )
    assert response.status_code == 302


# Withdrawing a request -----------------------------------------------------------------------------


def test_withdrawing_needs_confirmation(client, owner, fraud, stages):
    _, production = stages
    promotion = promotion_request(
        actor=owner,
        source=SRC,
        asset=fraud,
        version=fraud.versions.get(number=3),
        stage=production,
        justification="go",
    )
    page = html_of(as_user(client, owner).get(f"/promotions/{promotion.pk}/"))
    assert "Withdraw request" in page and 'name="confirm"' in page
    unconfirmed = as_user(client, owner).post(f"/promotions/{promotion.pk}/cancel", {"reason": "oops"})
    assert unconfirmed.status_code == 422
    assert 'id="cancel_confirm_error"' in html_of(unconfirmed) and "oops</textarea>" in html_of(unconfirmed)
    promotion.refresh_from_db()
    assert promotion.status == Status.PENDING and events("promotion.cancelled") == 0
    withdrawn = as_user(client, owner).post(
        f"/promotions/{promotion.pk}/cancel", {"reason": "wrong build", "confirm": "on"}, follow=True
    )
    assert f"Promotion #{promotion.pk} is withdrawn." in html_of(withdrawn)
    promotion.refresh_from_db()
    assert (promotion.status, promotion.status_reason) == (Status.CANCELLED, "wrong build")
    assert AuditEvent.objects.get(action="promotion.cancelled").source == "web"


def test_withdrawing_is_hidden_and_refused_for_others(client, owner, fraud, stages, reviewer):
    _, production = stages
    promotion = promotion_request(
        actor=owner,
        source=SRC,
        asset=fraud,
        version=fraud.versions.get(number=3),
        stage=production,
        justification="go",
    )
    assert 'id="cancel-form"' not in html_of(as_user(client, reviewer).get(f"/promotions/{promotion.pk}/"))
    refused = as_user(client, reviewer).post(
        f"/promotions/{promotion.pk}/cancel", {"confirm": "on"}, follow=True
    )
    assert "Only the requester or a manager" in html_of(refused)
    promotion.refresh_from_db()
    assert promotion.status == Status.PENDING


def test_an_archived_asset_offers_no_actions(client, owner, fraud):
    Asset.objects.filter(pk=fraud.pk).update(archived_at="2026-01-01T00:00:00Z")
    page = html_of(as_user(client, owner).get(PAGE))
    assert "/promotions/new/" not in page and 'id="edit-form"' not in page
    assert 'id="stage-form"' not in html_of(as_user(client, owner).get("/registry/model/fraud/versions/3/"))
    assert as_user(client, owner).get("/promotions/new/model/fraud/").status_code == 403


def test_the_chart_draws_one_point_and_flat_lines_without_dividing_by_zero():
    one = metric_chart.render([(4, {"auc": 0.9})], "auc", title="t", href=lambda n: f"/v/{n}")
    assert [(p.number, p.shown) for p in one.points] == [(4, "0.9")]
    flat = metric_chart.render([(1, {"auc": 1}), (2, {"auc": 1})], "auc", title="t", href=lambda n: f"/v/{n}")
    assert flat.points[0].y == flat.points[1].y
    assert metric_chart.metric_names([(1, {"ok": 1, "flag": True, "text": "x"})]) == ["ok"]


@pytest.mark.parametrize("count", [3, 60])
def test_the_request_page_query_count_does_not_grow(
    client, owner, fraud, django_assert_max_num_queries, count
):
    for _ in range(count):
        VersionFactory(asset=fraud)
    client.force_login(owner)
    # 1 session, 2 user, 3 asset, 4 the owner's roles, 5 stage pointers, 6 stages, 7 the latest 50 version
    # numbers, 8 the policies that apply (stage, asset joined), 9 their reviewer teams.
    # (and the header's inbox badge)
    with django_assert_max_num_queries(10):
        response = client.get("/promotions/new/model/fraud/", {"version": "1"})
    assert response.status_code == 200
    total = count + 3
    # The latest 50 versions, plus v1 (asked for) when it is older than those; and the two stages.
    assert html_of(response).count("<option value=") == min(total, 50) + (total > 50) + 2
    assert '<option value="1" selected>v1</option>' in html_of(response)
