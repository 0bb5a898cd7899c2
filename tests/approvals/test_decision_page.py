"""The promotion page answers "what changes, is it safe, who decides", and the inbox agrees with it.

Each test here is a finding from users, kept so that it does not come back:
- the comparison is against what runs today, or, when the target stage is empty, against the previous stage,
  and the page says which;
- a gate that fails shows the same in the inbox as on the page (one rule: requirements.standing_many), and
  beside the Approve button, with what approving then leads to;
- the policy is written out in words, and the eligible reviewers are named;
- after approving, the page says so plainly ("You approved this request on …"), not as a refusal.
"""

import html
import re

import pytest
from django.http import HttpResponse
from django.urls import path
from guardian.shortcuts import assign_perm

from accounts.models import GlobalRole
from approvals import requirements, services
from approvals.models import Policy, PromotionRequest, Status
from config.urls import urlpatterns as site_urlpatterns
from core.source import Source
from registry.models import Evaluation, StageHistory, StagePointer
from tests.factories import PolicyFactory, ServiceAccountFactory, TeamFactory, UserFactory

from .test_approvals_pages import another_model, browser, page, request_promotion

AUC_GATE = {"type": "metric", "metric": "auc", "op": ">=", "value": 0.92, "source": "latest_evaluation"}

# A site with a policy page, for the test that links to it (settings.ROOT_URLCONF = this module).
urlpatterns = [
    *site_urlpatterns,
    path("policies/<int:pk>/", lambda request, pk: HttpResponse(f"policy {pk}"), name="policy-page"),
]


def text(response) -> str:
    return html.unescape(response.content.decode())


def element(response, element_id: str) -> str:
    """The text of the element with this id (block tags read as a space, others removed, spaces collapsed)."""
    body = response.content.decode()
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>', body)
    assert match, f"no element #{element_id}"
    tag, start = match.group(1), match.end()
    depth, position = 1, start
    pattern = re.compile(rf"<(/?){tag}\b[^>]*>")
    while depth:
        found = pattern.search(body, position)
        depth += -1 if found.group(1) else 1
        position = found.end()
    inner = re.sub(r"</?(?:t[hdr]|li|p|h\d|ul|div|dt|dd|caption)\b[^>]*>", " ", body[start : found.start()])
    inner = re.sub(r"<[^>]+>", "", inner)
    return re.sub(r"\s+", " ", html.unescape(inner)).strip()


def set_gates(world, *gates):
    Policy.objects.filter(pk=world.policy.pk).update(gates=list(gates))


# What changes: the comparison and what it is against --------------------------------------------------


def test_deltas_are_shown_against_the_version_in_production_today(world):
    promotion = request_promotion(world)  # v2 (auc 0.93) while v1 (auc 0.90) serves production
    response = browser(world.r1).get(page(promotion.pk))
    assert element(response, "baseline") == "Against v1, in production today."
    assert response.context["base"] == world.v1
    assert element(response, "metric-deltas").endswith("Metric v1 v2 Change auc 0.9 0.93 ▲ +0.03 better")


def test_with_production_empty_the_page_compares_with_staging_and_says_so(world):
    """The finding: nothing in production meant no deltas at all ("new" everywhere)."""
    StagePointer.objects.filter(asset=world.asset, stage=world.production).delete()
    StagePointer.objects.create(
        asset=world.asset, stage=world.staging, version=world.v1, updated_at="2026-01-01T00:00:00Z"
    )
    promotion = request_promotion(world)
    response = browser(world.r1).get(page(promotion.pk))
    assert element(response, "baseline") == "Nothing in production; against v1 in staging."
    assert response.context["base"] == world.v1
    [auc] = response.context["comparison"]["metrics"]
    assert (auc["verdict"], auc["arrow"], auc["delta"]) == ("better", "▲", "+0.03")
    assert "Replaces</dt><dd>nothing: production is empty" in response.content.decode()
    assert "In staging: " in text(response)  # the compared version's card says where it is


def test_the_candidate_itself_in_staging_is_not_what_it_is_compared_with(world):
    StagePointer.objects.filter(asset=world.asset, stage=world.production).delete()
    StagePointer.objects.create(
        asset=world.asset, stage=world.staging, version=world.v2, updated_at="2026-01-01T00:00:00Z"
    )
    promotion = request_promotion(world)
    response = browser(world.r1).get(page(promotion.pk))
    assert response.context["base"] is None
    assert element(response, "baseline") == "Nothing in production or an earlier stage to compare with."


def test_a_gate_says_which_way_is_better_for_a_metric_the_names_do_not_know(world):
    world.v1.metrics, world.v2.metrics = (
        {"auc": 0.9, "ks": 0.40, "odd": 1},
        {"auc": 0.93, "ks": 0.35, "odd": 2},
    )
    world.v1.save()
    world.v2.save()
    set_gates(world, {"type": "metric", "metric": "ks", "op": "<=", "value": 0.5, "source": "version"})
    promotion = request_promotion(world)
    metrics = {
        row["name"]: row for row in browser(world.r1).get(page(promotion.pk)).context["comparison"]["metrics"]
    }
    assert (metrics["ks"]["arrow"], metrics["ks"]["verdict"]) == ("▼", "better")  # the gate: lower is better
    assert (metrics["odd"]["arrow"], metrics["odd"]["verdict"]) == ("▲", "changed")  # no known direction


# Is it safe: one gate rule for the page and the inbox, and the warning beside Approve ---------------------


def test_a_gate_added_after_the_request_fails_alike_in_the_inbox_and_on_the_page(world):
    """The finding: the inbox said "✓ 1 passing" (the request's snapshot) while the page said ✗ (today's
    policies too)."""
    set_gates(world, {"type": "previous_stage", "stage": "staging", "when": "ever"})
    StageHistory.objects.create(
        asset=world.asset,
        stage=world.staging,
        version=world.v2,
        source="cli",
        created_at="2026-01-01T00:00:00Z",
    )
    promotion = request_promotion(world)
    # Today's organisation-wide policy asks for an AUC the candidate's latest evaluation does not reach.
    PolicyFactory(stage=world.production, gates=[AUC_GATE])
    Evaluation.objects.create(version=world.v2, name="holdout", metrics={"auc": 0.87})

    on_page = browser(world.r1).get(page(promotion.pk))
    [row] = browser(world.r1).get("/").context["waiting"]
    page_verdicts = [(gate.label, gate.passed, gate.actual) for gate in on_page.context["gates"]]
    assert page_verdicts == [("is or has been in staging", True, "staging"), ("auc ≥ 0.92", False, "0.87")]
    assert (row.gates_passed, row.gates_failed) == (1, 1)
    assert [gate.sentence for gate in row.failing] == ["auc ≥ 0.92 fails: 0.87"]
    inbox = text(browser(world.r1).get("/"))
    assert "✗ 1 failing" in inbox and "auc ≥ 0.92 fails: 0.87" in inbox
    assert "✓ 1 passing" not in inbox
    assert row.required == on_page.context["requirements"]["required_approvals"] == 2


def test_a_failing_gate_is_shown_beside_approve_with_what_approving_leads_to(world):
    """The finding: Approve looked as usual; two reviewers approved and the request ended "Failed"."""
    set_gates(world, AUC_GATE)
    Evaluation.objects.create(version=world.v2, name="holdout", metrics={"auc": 0.95})
    promotion = request_promotion(world)
    Evaluation.objects.create(version=world.v2, name="nightly", metrics={"auc": 0.87})

    first = browser(world.r1).get(page(promotion.pk))
    warning = element(first, "gate-warning")
    assert warning.startswith("✗ Gate auc ≥ 0.92 fails: 0.87.")
    assert (
        "Approving now records your approval, but the request cannot be applied until the gate passes."
        in warning
    )
    assert re.search(
        r'id="gate-warning".*?</p>\s*<button type="submit" class="approve"', first.content.decode(), re.S
    )
    assert ">Approve anyway</button>" in first.content.decode()

    services.promotion_approve(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk)
    last = element(browser(world.r2).get(page(promotion.pk)), "gate-warning")
    assert "Your approval would complete the 2 needed" in last and "the request would fail at once" in last

    # And so it does: the services' rule, which the warning describes.
    services.promotion_approve(actor=world.r2, source=Source.cli(), promotion_id=promotion.pk)
    promotion.refresh_from_db()
    assert promotion.status == Status.FAILED and "auc" in promotion.status_reason


def test_without_apply_on_approval_the_warning_says_applying_fails_later(world):
    Policy.objects.filter(pk=world.policy.pk).update(
        gates=[AUC_GATE], apply_on_approval=False, required_approvals=1
    )
    Evaluation.objects.create(version=world.v2, name="holdout", metrics={"auc": 0.95})
    promotion = request_promotion(world)
    Evaluation.objects.create(version=world.v2, name="nightly", metrics={"auc": 0.87})
    warning = element(browser(world.r1).get(page(promotion.pk)), "gate-warning")
    assert "Your approval would complete the 1 needed, but applying the request fails" in warning
    services.promotion_approve(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk)
    apply = element(browser(world.manager).get(page(promotion.pk)), "apply-warning")
    assert apply.startswith("✗ Gate auc ≥ 0.92 fails: 0.87.") and "end the request as failed" in apply


def test_passing_gates_leave_approve_as_it_is(world):
    set_gates(world, AUC_GATE)
    Evaluation.objects.create(version=world.v2, name="holdout", metrics={"auc": 0.93})
    promotion = request_promotion(world)
    body = browser(world.r1).get(page(promotion.pk)).content.decode()
    assert 'id="gate-warning"' not in body and ">Approve</button>" in body
    assert "All 1 pass." in body


# Who decides: the policy in words, the eligible reviewers ----------------------------------------------


def test_the_policy_is_written_out_in_words(world):
    set_gates(world, AUC_GATE)
    Evaluation.objects.create(version=world.v2, name="holdout", metrics={"auc": 0.93})
    promotion = request_promotion(world)
    response = browser(world.r1).get(page(promotion.pk))
    summary = element(response, "policy-summary")
    assert summary.startswith(
        "Policy: 2 approvals from team reviewers; the author may not approve; gates: auc ≥ 0.92; "
        "expires after 7 days; applied on approval."
    )
    # The site has policy pages (/policies/<id>/): the policy is named and linked.
    assert f"Policy #{world.policy.pk} (model/fraud → production)" in summary
    assert f'href="/policies/{world.policy.pk}/"' in response.content.decode()


def test_several_policies_and_a_policy_page_when_the_site_has_one(world, settings):
    settings.ROOT_URLCONF = __name__
    everyone = PolicyFactory(stage=world.production, required_approvals=1, allow_author_approval=True)
    Policy.objects.filter(pk=world.policy.pk).update(apply_on_approval=False, expiry_hours=36)
    promotion = request_promotion(world)
    response = browser(world.r1).get(page(promotion.pk))
    summary = element(response, "policy-summary")
    assert (
        "2 approvals from team reviewers; the author may not approve; gates: none; expires after 36 hours;"
        in summary
    )
    assert "applied by the requester or a manager once approved" in summary
    assert "each rule is the stricter of these" in summary
    body = response.content.decode()
    assert f'<a href="/policies/{world.policy.pk}/">Policy #{world.policy.pk}</a>' in body
    assert f'<a href="/policies/{everyone.pk}/">Policy #{everyone.pk}</a> (every asset → production)' in body


def test_the_eligible_reviewers_are_named_with_where_they_stand(world):
    promotion = request_promotion(world)
    services.promotion_approve(actor=world.r2, source=Source.cli(), promotion_id=promotion.pk)
    response = browser(world.r1).get(page(promotion.pk))
    assert element(response, "eligible-reviewers") == (
        "Who may approve r1 (you) not yet r2 ✓ approved r3 not yet"
    )
    assert response.context["counted"] == 1


def test_many_eligible_reviewers_are_counted_not_listed(world):
    for index in range(12):
        UserFactory(username=f"many{index}").groups.add(world.reviewers)
    promotion = request_promotion(world)
    response = browser(world.r1).get(page(promotion.pk))
    assert element(response, "eligible-reviewers") == "Who may approve Members of team reviewers (15 people)."


def test_eligible_reviewers_agree_with_review_refusal_person_by_person(world):
    """requirements.eligible_reviewers (one query) and review_refusal (the services' check) are one rule."""
    others = TeamFactory(name="others")
    direct = UserFactory(username="direct")  # a direct grant, in the policy's team
    direct.groups.add(world.reviewers)
    assign_perm("registry.review_asset", direct, world.asset)
    outside_team = UserFactory(username="outside-team")  # a direct grant, not in the policy's team
    assign_perm("registry.review_asset", outside_team, world.asset)
    other_team = UserFactory(username="other-team")  # granted through a team the policy does not name
    other_team.groups.add(others)
    assign_perm("registry.review_asset", others, world.asset)
    disabled = UserFactory(username="disabled", is_active=False)
    disabled.groups.add(world.reviewers)
    auditor = UserFactory(username="audrey", global_role=GlobalRole.AUDITOR)
    auditor.groups.add(world.reviewers)
    robot = ServiceAccountFactory(username="robot")
    robot.groups.add(world.reviewers)
    world.author.groups.add(world.reviewers)
    rita = UserFactory(username="rita")
    rita.groups.add(world.reviewers)
    assign_perm("registry.request_promotion_asset", rita, world.asset)
    promotion = request_promotion(world, actor=rita)
    people = [world.r1, world.r2, world.r3, world.author, world.manager, world.outsider]
    people += [direct, outside_team, other_team, disabled, auditor, robot, rita]

    for allow_author, teams in [(False, [world.reviewers.pk]), (True, []), (False, [-1])]:
        needs = {**promotion.policy_snapshot, "allow_author_approval": allow_author, "reviewer_teams": teams}
        expected = {p.username for p in people if requirements.review_refusal(p, promotion, needs) is None}
        found = set(requirements.eligible_reviewers(promotion, needs).values_list("username", flat=True))
        assert found == expected, (allow_author, teams)
    assert expected == set()  # two policies naming disjoint teams leave nobody


def test_an_approval_that_no_longer_counts_is_said_not_to(world):
    promotion = request_promotion(world)
    services.promotion_approve(actor=world.r2, source=Source.cli(), promotion_id=promotion.pk)
    world.r2.groups.remove(world.reviewers)
    response = browser(world.r1).get(page(promotion.pk))
    assert response.context["counted"] == 0
    assert "Recorded but not counted now (no longer eligible): r2." in element(response, "eligible-reviewers")


# Where I stand --------------------------------------------------------------------------------------


def test_after_approving_the_page_says_so_plainly(world):
    """The finding: a yellow "You cannot review this request" box after one's own approval."""
    promotion = request_promotion(world)
    after = browser(world.r1).post(f"/promotions/{promotion.pk}/approve", {"comment": "ok"}, follow=True)
    review = PromotionRequest.objects.get(pk=promotion.pk).reviews.get()
    mine = element(after, "my-review")
    assert mine == f"You approved this request on {review.created_at:%Y-%m-%d %H:%M} UTC."
    body = after.content.decode()
    assert 'id="review-refusal"' not in body and "You cannot review this request" not in body
    assert 'id="approve-form"' not in body


def test_after_rejecting_the_page_says_so_and_that_the_request_is_closed(world):
    promotion = request_promotion(world)
    after = browser(world.r1).post(
        f"/promotions/{promotion.pk}/reject", {"comment": "no", "confirm": "on"}, follow=True
    )
    assert element(after, "my-review").startswith("You rejected this request on ")
    assert element(after, "review-closed") == "This request is rejected; it can no longer be reviewed."
    assert "You cannot review this request" not in text(after)


def test_someone_not_eligible_still_sees_why(world):
    promotion = request_promotion(world)
    response = browser(world.manager).get(page(promotion.pk))
    assert element(response, "review-refusal") == (
        "You cannot review this request. You do not hold the review role on model/fraud."
    )


# Query counts ------------------------------------------------------------------------------------------


def _crowd(world, *, reviewers: int, evaluations: int, gates: int, approvals: int):
    """A request with this many eligible reviewers (besides r1-r3), evaluations, gates and approvals."""
    people = [UserFactory(username=f"crowd{i}") for i in range(reviewers)]
    for person in people:
        person.groups.add(world.reviewers)
    metric_gates = [
        {"type": "metric", "metric": f"m{i}", "op": ">=", "value": 0, "source": "any"} for i in range(gates)
    ]
    Policy.objects.filter(pk=world.policy.pk).update(gates=metric_gates, required_approvals=approvals + 2)
    for index in range(evaluations):
        Evaluation.objects.create(
            version=world.v2, name=f"e{index}", metrics={f"m{i}": index for i in range(gates)}
        )
    promotion = request_promotion(world)
    for person in people[:approvals]:
        services.promotion_approve(actor=person, source=Source.cli(), promotion_id=promotion.pk)
    return promotion


@pytest.mark.parametrize(
    ("reviewers", "evaluations", "gates", "approvals"), [(0, 1, 1, 0), (2, 3, 2, 1), (14, 8, 6, 5)]
)
def test_promotion_page_queries_do_not_grow_with_reviewers_evaluations_or_gates(
    world, django_assert_max_num_queries, reviewers, evaluations, gates, approvals
):
    promotion = _crowd(world, reviewers=reviewers, evaluations=evaluations, gates=gates, approvals=approvals)
    client = browser(world.r1)
    # 1 session, 2 user, 3 the request, 4 its reviews, 5 what to compare with (one stage pointer query),
    # 6 policies, 7 their teams, 8-10 gate facts (latest evaluation, stage pointers, stage history),
    # 11 approvals that count now, 12 the eligible people (the first NAMED_REVIEWERS + 1) with how many
    # there are (a window count over the same rows), 13-14 the viewer's review grants and teams, 15 the
    # manage check for the cancel button, 16 lineage, 17 history.
    # (one more than the page's own 17: the header's inbox badge)
    with django_assert_max_num_queries(18):
        response = client.get(page(promotion.pk))
    assert response.context["counted"] == approvals
    assert len(response.context["gates"]) == gates
    assert response.context["deciders"].total == reviewers + 3


@pytest.mark.parametrize(("rows", "gates"), [(1, 1), (6, 5)])
def test_inbox_queries_do_not_grow_with_rows_or_gates(world, django_assert_max_num_queries, rows, gates):
    metric_gates = [
        {"type": "metric", "metric": f"m{i}", "op": ">=", "value": 1, "source": "any"} for i in range(gates)
    ]
    for index in range(rows):
        asset, version = another_model(world, f"model-{index}")
        version.metrics = {f"m{i}": 2 for i in range(gates)}
        version.save()
        for number in range(3):  # m0 fails on the latest evaluation
            Evaluation.objects.create(version=version, name=f"e{number}", metrics={"m0": number - 2})
        request_promotion(world, asset=asset, version=version)
    PolicyFactory(
        stage=world.production, gates=metric_gates
    )  # added after the requests: checked all the same
    client = browser(world.r1)
    # session, user; waiting for me; my requests; policies and their teams; stage pointers and history of
    # the versions (the latest evaluations come annotated on the rows); activity: visible asset ids, events.
    # (one more than the inbox's own 10: the header's inbox badge)
    with django_assert_max_num_queries(11):
        response = client.get("/")
    waiting = response.context["waiting"]
    assert len(waiting) == rows
    assert {(row.gates_passed, row.gates_failed) for row in waiting} == {(gates - 1, 1)}


# The demo tells the story -------------------------------------------------------------------------------


def test_the_demo_request_is_compared_with_production_and_has_gates_to_read(settings, tmp_path, db):
    from django.core.management import call_command

    from accounts.models import User

    settings.VAR_DIR = tmp_path
    call_command("load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    promotion = PromotionRequest.objects.get(
        asset__name="fraud-detector", version__number=3, status=Status.PENDING
    )
    reviewer = User.objects.get(username="reviewer1")
    response = browser(reviewer).get(page(promotion.pk))
    assert element(response, "baseline") == "Against v2, in production today."
    verdicts = {row["name"]: (row["arrow"], row["word"]) for row in response.context["comparison"]["metrics"]}
    assert verdicts == {
        "auc": ("▲", "better"),
        "latency_ms": ("▼", "better"),
        "precision": ("▼", "worse"),
        "recall": ("▲", "better"),
    }
    assert [(gate.label, gate.passed, gate.actual) for gate in response.context["gates"]] == [
        ("is or has been in staging", True, "staging"),
        ("auc ≥ 0.92", True, "0.93"),
    ]
    assert "2 approvals from team reviewers; the author may not approve" in element(
        response, "policy-summary"
    )
    assert (
        element(response, "eligible-reviewers") == "Who may approve reviewer1 (you) not yet reviewer2 not yet"
    )
    [row] = browser(reviewer).get("/").context["waiting"]
    assert row.promotion == promotion and (row.gates_passed, row.gates_failed) == (2, 0)
