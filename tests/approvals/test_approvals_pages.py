"""The reviewer pages, the inbox and the promotion page: the same selectors and services as the API."""

import html
import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from guardian.shortcuts import assign_perm

from approvals import requirements, selectors, services
from approvals.models import Policy, PromotionRequest, Review, Status
from approvals.views import MY_REQUESTS_LIMIT
from audit.models import AuditEvent
from core.source import Source
from registry.models import AssetKind, Evaluation, StageHistory, StagePointer
from tests.factories import AssetFactory, EdgeFactory, UserFactory, VersionFactory


def browser(user=None, **kwargs) -> Client:
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def request_promotion(world, actor=None, asset=None, version=None, stage=None) -> PromotionRequest:
    return services.promotion_request(
        actor=actor or world.ci,
        source=Source.cli(),
        asset=asset or world.asset,
        version=version or world.v2,
        stage=stage or world.production,
        justification="better auc",
        ci={"commit": "abc1234", "ref": "refs/heads/main", "run_url": "https://ci.example/run/7"},
    )


def page(pk: int) -> str:
    return f"/promotions/{pk}/"


def text(response) -> str:
    return html.unescape(response.content.decode())


def without_csrf(response) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())


def another_model(world, name: str, required: int = 2):
    """A model with v1 in production and v2, reviewed by the reviewers team, like world.asset."""
    asset = AssetFactory(kind=AssetKind.MODEL, name=name)
    v1 = VersionFactory(asset=asset, metrics={"auc": 0.9})
    v2 = VersionFactory(asset=asset, metrics={"auc": 0.91, "latency_ms": 12})
    StagePointer.objects.create(
        asset=asset, stage=world.production, version=v1, updated_at="2026-01-01T00:00:00Z"
    )
    assign_perm("registry.review_asset", world.reviewers, asset)
    assign_perm("registry.request_promotion_asset", world.ci, asset)
    policy = Policy.objects.create(
        asset=asset, kind=AssetKind.MODEL, stage=world.production, required_approvals=required
    )
    policy.reviewer_teams.set([world.reviewers])
    return asset, v2


# Access and wiring ---------------------------------------------------------------------------------


def test_inbox_shows_a_pending_request_to_a_reviewer_only(world):
    promotion = request_promotion(world)
    reviewer = browser(world.r1).get("/")
    assert reviewer.status_code == 200
    waiting = reviewer.context["waiting"]
    assert [row.promotion.pk for row in waiting] == [promotion.pk]
    assert (waiting[0].approvals, waiting[0].required) == (0, 2)
    assert page(promotion.pk) in reviewer.content.decode()

    # The requester (a person here, so that the browser is theirs) and an outsider see nothing waiting.
    requester = UserFactory(username="rita")
    requester.groups.add(world.reviewers)
    assign_perm("registry.request_promotion_asset", requester, world.asset)
    own = request_promotion(world, actor=requester, version=world.v3)
    mine = browser(requester).get("/")
    assert mine.context["waiting"] == []
    assert [row.promotion.pk for row in mine.context["mine"]] == [own.pk]
    outsider = browser(world.outsider).get("/")
    assert outsider.context["waiting"] == [] and outsider.context["mine"] == []
    assert outsider.context["activity"] == []
    assert page(own.pk) not in outsider.content.decode()


def test_inbox_leaves_out_what_the_reviewer_has_decided_and_what_is_no_longer_pending(world):
    promotion = request_promotion(world)
    services.promotion_approve(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk)
    assert browser(world.r1).get("/").context["waiting"] == []
    assert len(browser(world.r3).get("/").context["waiting"]) == 1
    services.promotion_cancel(actor=world.manager, source=Source.cli(), promotion_id=promotion.pk)
    assert browser(world.r3).get("/").context["waiting"] == []


def test_recent_activity_shows_only_events_on_visible_assets(world):
    promotion = request_promotion(world)
    hidden, _ = another_model(world, "hidden")
    hidden_version = VersionFactory(asset=hidden)
    services.promotion_request(
        actor=world.ci,
        source=Source.cli(),
        asset=hidden,
        version=hidden_version,
        stage=world.production,
        justification="x",
    )
    viewer = UserFactory(username="vic")
    assign_perm("registry.view_asset", viewer, world.asset)
    activity = browser(viewer).get("/").context["activity"]
    assert {event.asset_id for event in activity} == {world.asset.pk}
    assert str(promotion.pk) in {event.target_id for event in activity}


def test_pages_need_a_session(world):
    promotion = request_promotion(world)
    for url in ("/", page(promotion.pk)):
        response = browser().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    response = browser().post(f"/promotions/{promotion.pk}/approve")
    assert response.status_code == 302
    assert not Review.objects.exists()


def test_promotion_page_for_a_reviewer_and_404_for_an_outsider(world):
    promotion = request_promotion(world)
    response = browser(world.r1).get(page(promotion.pk))
    assert response.status_code == 200
    body = response.content.decode()
    for element in ('id="approve-form"', 'id="reject-form"', 'id="gate-checklist"', 'id="metric-deltas"'):
        assert element in body
    assert 'id="review-refusal"' not in body
    assert 'id="status"' in body and ">Pending<" in body
    assert "csrfmiddlewaretoken" in body
    assert 'href="https://ci.example/run/7"' in body and "abc1234" in body
    missing = browser(world.outsider).get(page(promotion.pk + 1000))
    hidden = browser(world.outsider).get(page(promotion.pk))
    assert hidden.status_code == missing.status_code == 404
    assert without_csrf(hidden) == without_csrf(missing)  # nothing tells a hidden request from none
    refused = browser(world.outsider).post(f"/promotions/{promotion.pk}/approve")
    assert refused.status_code == 404
    assert not Review.objects.exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/"),
        ("delete", "/"),
        ("post", "/promotions/{pk}/"),
        ("put", "/promotions/{pk}/"),
        ("get", "/promotions/{pk}/approve"),
        ("get", "/promotions/{pk}/reject"),
        ("get", "/promotions/{pk}/cancel"),
        ("get", "/promotions/{pk}/apply"),
        ("delete", "/promotions/{pk}/approve"),
    ],
)
def test_wrong_methods_answer_405(world, method, path):
    promotion = request_promotion(world)
    response = getattr(browser(world.r1), method)(path.format(pk=promotion.pk))
    assert response.status_code == 405
    assert not Review.objects.exists()


def test_forms_post_only_with_the_csrf_token(world):
    promotion = request_promotion(world)
    client = browser(world.r1, enforce_csrf_checks=True)
    assert client.post(f"/promotions/{promotion.pk}/approve", {"comment": "ok"}).status_code == 403
    assert not Review.objects.exists()


# Deciding through the page --------------------------------------------------------------------------


def test_two_approvals_through_the_page_apply_the_promotion(world):
    promotion = request_promotion(world)
    first = browser(world.r1).post(f"/promotions/{promotion.pk}/approve", {"comment": "fine"}, follow=True)
    assert first.redirect_chain == [(page(promotion.pk), 302)]
    assert "waits for more approvals" in text(first)
    assert first.context["counted"] == 1
    assert "You approved this request on" in text(first)  # said plainly, not as a refusal
    assert 'id="review-refusal"' not in first.content.decode()
    assert 'id="approve-form"' not in first.content.decode()

    second = browser(world.r2).post(f"/promotions/{promotion.pk}/approve", {}, follow=True)
    assert "is applied" in text(second)
    promotion.refresh_from_db()
    assert promotion.status == Status.APPLIED
    pointer = StagePointer.objects.get(asset=world.asset, stage=world.production)
    assert pointer.version == world.v2
    assert list(promotion.reviews.values_list("reviewer__username", "comment")) == [
        ("r1", "fine"),
        ("r2", ""),
    ]
    audit = AuditEvent.objects.filter(target_id=str(promotion.pk), target_kind="approvals.promotionrequest")
    assert {"promotion.approved", "promotion.applied"} <= set(audit.values_list("action", flat=True))
    assert set(audit.filter(action="promotion.approved").values_list("source", flat=True)) == {"web"}


def test_the_requester_sees_why_they_cannot_review_and_a_post_is_refused(world):
    rita = UserFactory(username="rita")
    rita.groups.add(world.reviewers)  # a reviewer by team, and yet the requester
    assign_perm("registry.request_promotion_asset", rita, world.asset)
    promotion = request_promotion(world, actor=rita)
    client = browser(rita)

    response = client.get(page(promotion.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="review-refusal"' in body
    assert "You requested this promotion; someone else must review it." in text(response)
    assert 'id="approve-form"' not in body and 'id="reject-form"' not in body
    assert 'id="cancel-form"' in body  # the requester may withdraw it

    events = AuditEvent.objects.count()
    refused = client.post(f"/promotions/{promotion.pk}/approve", {"comment": "mine"}, follow=True)
    assert refused.redirect_chain == [(page(promotion.pk), 302)]
    shown = [str(message) for message in refused.context["messages"]]
    assert shown == ["You requested this promotion; someone else must review it."]
    assert "someone else must review it" in text(refused)
    assert not Review.objects.exists()
    assert AuditEvent.objects.count() == events
    promotion.refresh_from_db()
    assert promotion.status == Status.PENDING and promotion.revision == 1


def test_rejecting_needs_a_comment_and_a_blank_one_changes_nothing(world):
    promotion = request_promotion(world)
    client = browser(world.r1)
    events = AuditEvent.objects.count()
    for data in ({"confirm": "on"}, {"comment": "   ", "confirm": "on"}):
        response = client.post(f"/promotions/{promotion.pk}/reject", data)
        assert response.status_code == 422
        assert response.context["reject_form"].errors == {"comment": ["Say why you reject the request."]}
        assert 'id="reject_comment_error"' in response.content.decode()
        assert 'aria-invalid="true"' in response.content.decode()
    assert not Review.objects.exists()
    assert AuditEvent.objects.count() == events
    promotion.refresh_from_db()
    assert promotion.status == Status.PENDING

    # A comment alone is not enough: rejecting is final, so it needs the explicit confirmation too.
    unconfirmed = client.post(f"/promotions/{promotion.pk}/reject", {"comment": "auc drop on EU"})
    assert unconfirmed.status_code == 422
    assert unconfirmed.context["reject_form"].errors == {
        "confirm": ["Tick the box to confirm that you reject the request."]
    }
    assert "auc drop on EU" in unconfirmed.content.decode()  # what was typed is kept
    assert not Review.objects.exists()
    promotion.refresh_from_db()
    assert promotion.status == Status.PENDING

    data = {"comment": "auc drop on EU", "confirm": "on"}
    rejected = client.post(f"/promotions/{promotion.pk}/reject", data, follow=True)
    assert "is now rejected" in text(rejected)
    promotion.refresh_from_db()
    assert (promotion.status, promotion.status_reason) == (Status.REJECTED, "auc drop on EU")
    assert "This request is rejected; it can no longer be reviewed." in text(rejected)


def test_deciding_twice_and_deciding_a_closed_request_show_the_services_refusal(world):
    promotion = request_promotion(world)
    client = browser(world.r1)
    client.post(f"/promotions/{promotion.pk}/approve", {}, follow=True)
    data = {"comment": "changed my mind", "confirm": "on"}
    again = client.post(f"/promotions/{promotion.pk}/reject", data, follow=True)
    assert [str(m) for m in again.context["messages"]] == ["You have already reviewed this request."]
    assert Review.objects.count() == 1

    services.promotion_cancel(actor=world.manager, source=Source.cli(), promotion_id=promotion.pk)
    closed = browser(world.r2).post(f"/promotions/{promotion.pk}/approve", {}, follow=True)
    assert "is cancelled; it can no longer change this way" in text(closed)
    assert Review.objects.count() == 1


def test_someone_without_the_review_role_is_told_so(world):
    promotion = request_promotion(world)
    response = browser(world.manager).get(page(promotion.pk))
    assert response.status_code == 200
    assert "You do not hold the review role on model/fraud." in text(response)
    assert 'id="cancel-form"' in response.content.decode()  # a manager may withdraw it


def test_the_requester_or_a_manager_cancels_through_the_page(world):
    promotion = request_promotion(world)
    reviewer = browser(world.r1).post(
        f"/promotions/{promotion.pk}/cancel", {"reason": "no", "confirm": "on"}, follow=True
    )
    assert "Only the requester or a manager" in text(reviewer)
    cancelled = browser(world.manager).post(
        f"/promotions/{promotion.pk}/cancel", {"reason": "wrong build", "confirm": "on"}
    )
    assert cancelled.status_code == 302
    promotion.refresh_from_db()
    assert (promotion.status, promotion.status_reason) == (Status.CANCELLED, "wrong build")


def test_an_applied_request_into_an_empty_stage_is_not_compared_with_itself(world):
    StagePointer.objects.filter(asset=world.asset, stage=world.production).delete()
    promotion = request_promotion(world)
    for reviewer in (world.r1, world.r2):
        services.promotion_approve(actor=reviewer, source=Source.cli(), promotion_id=promotion.pk)
    response = browser(world.r1).get(page(promotion.pk))
    assert response.context["base"] is None
    assert "nothing: production was empty" in text(response)
    assert [row["verdict"] for row in response.context["comparison"]["metrics"]] == ["new"]


def test_an_approved_request_waiting_to_be_applied_is_applied_by_a_manager(world):
    Policy.objects.filter(pk=world.policy.pk).update(apply_on_approval=False)
    promotion = request_promotion(world)
    for reviewer in (world.r1, world.r2):
        browser(reviewer).post(f"/promotions/{promotion.pk}/approve", {})
    promotion.refresh_from_db()
    assert promotion.status == Status.APPROVED
    response = browser(world.manager).get(page(promotion.pk))
    assert 'id="apply-form"' in response.content.decode()
    browser(world.manager).post(f"/promotions/{promotion.pk}/apply")
    assert StagePointer.objects.get(asset=world.asset, stage=world.production).version == world.v2


# What the page shows --------------------------------------------------------------------------------


def test_the_page_compares_the_candidate_with_what_it_replaces(world):
    world.v2.params, world.v1.params = {"depth": 8, "trees": 400}, {"depth": 6, "trees": 400}
    world.v2.metrics = {"auc": 0.93, "latency_ms": 15, "recall": 0.7}
    world.v1.metrics = {"auc": 0.90, "latency_ms": 12, "precision": 0.8}
    world.v2.model_card, world.v1.model_card = (
        "# Fraud\nTrained on 2026 data.",
        "# Fraud\nTrained on 2025 data.",
    )
    world.v2.origin = {"commit": "deadbeef", "run_url": "javascript:alert(1)"}
    for version in (world.v1, world.v2):
        version.save()
    dataset = VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET, name="tx"))
    assign_perm("registry.view_asset", world.reviewers, dataset.asset)
    EdgeFactory(parent=dataset, child=world.v2, relation="trained_on")
    Policy.objects.filter(pk=world.policy.pk).update(
        gates=[{"type": "metric", "metric": "auc", "op": ">=", "value": 0.92, "source": "any"}]
    )
    promotion = request_promotion(world)
    Evaluation.objects.create(version=world.v2, name="nightly", metrics={"auc": 0.91})  # now below the gate

    response = browser(world.r1).get(page(promotion.pk))
    body = text(response)
    metrics = {row["name"]: row for row in response.context["comparison"]["metrics"]}
    assert (metrics["auc"]["verdict"], metrics["auc"]["arrow"], metrics["auc"]["delta"]) == (
        "better",
        "▲",
        "+0.03",
    )
    assert (metrics["latency_ms"]["verdict"], metrics["latency_ms"]["arrow"]) == ("worse", "▲")
    assert metrics["precision"]["verdict"] == "gone" and metrics["recall"]["verdict"] == "new"
    assert "▲" in body and "better" in body and "worse" in body
    params = {
        change.key: change.change for change in response.context["comparison"]["sections"]["params"].rows
    }
    assert params == {"depth": "changed"}
    assert "Trained on 2026 data." in body and "Trained on 2025 data." in body
    assert "<ins" in response.content.decode() and "<del" in response.content.decode()
    assert world.v2.digest in body and world.v1.digest in body
    assert 'href="javascript:' not in response.content.decode()
    assert "trained on" in body and 'href="/registry/dataset/tx/versions/1/">dataset/tx v1</a>' in body
    assert 'href="/registry/model/fraud/compare/?a=1&b=2"' in body
    [gate] = response.context["gates"]
    assert (gate.passed, gate.actual) == (False, "0.91")
    assert (
        "✗ Fail" in body
        and "auc ≥ 0.92" in body
        and "(latest evaluation, else the version's metrics)" in body
    )


def test_a_prompt_shows_its_template_and_configuration_diffs(world):
    prompt = AssetFactory(kind=AssetKind.PROMPT, name="reply")
    old = VersionFactory(
        asset=prompt, template="Answer {{q}}.", model_config={"model": "a", "temperature": 0.2}
    )
    new = VersionFactory(asset=prompt, template="Answer {{q}} briefly.", model_config={"model": "b"})
    StagePointer.objects.create(
        asset=prompt, stage=world.production, version=old, updated_at="2026-01-01T00:00:00Z"
    )
    assign_perm("registry.review_asset", world.reviewers, prompt)
    assign_perm("registry.request_promotion_asset", world.ci, prompt)
    Policy.objects.create(asset=prompt, kind=AssetKind.PROMPT, stage=world.production)
    promotion = request_promotion(world, asset=prompt, version=new)
    response = browser(world.r1).get(page(promotion.pk))
    comparison = response.context["comparison"]
    assert [
        (line.kind, line.text) for line in comparison["sections"]["template"].rows if line.kind != "hunk"
    ] == [
        ("remove", "Answer {{q}}."),
        ("add", "Answer {{q}} briefly."),
    ]
    assert {c.key: c.change for c in comparison["sections"]["config"].rows} == {
        "model": "changed",
        "temperature": "removed",
    }
    assert 'id="template-diff"' in response.content.decode()


def test_inbox_rows_check_gates_against_the_facts_of_today(world):
    Policy.objects.filter(pk=world.policy.pk).update(
        gates=[
            {"type": "metric", "metric": "auc", "op": ">=", "value": 0.92, "source": "any"},
            {"type": "model_card"},
        ]
    )
    world.v2.model_card = "# Card"
    world.v2.save()
    request_promotion(world)
    [row] = browser(world.r1).get("/").context["waiting"]
    assert (row.gates_passed, row.gates_failed) == (2, 0)
    Evaluation.objects.create(version=world.v2, name="nightly", metrics={"auc": 0.5})
    [row] = browser(world.r1).get("/").context["waiting"]
    assert (row.gates_passed, row.gates_failed) == (1, 1)


def test_version_facts_of_a_list_agree_with_those_of_one_version(world):
    Evaluation.objects.create(version=world.v2, name="a", metrics={"auc": 0.8})
    Evaluation.objects.create(version=world.v2, name="b", metrics={"auc": 0.85})
    StageHistory.objects.create(
        asset=world.asset,
        stage=world.staging,
        version=world.v2,
        source="cli",
        created_at="2026-01-01T00:00:00Z",
    )
    request_promotion(world)
    request_promotion(world, version=world.v3)  # supersedes the first: both are rows of "my requests"
    rows = list(selectors.promotion_requests_of_user(user=world.ci))
    many = requirements.version_facts_many(
        versions=[row.version for row in rows],
        evaluation_metrics={row.version_id: row.latest_evaluation_metrics for row in rows},
    )
    assert set(many) == {world.v2.pk, world.v3.pk}
    for row in rows:
        assert many[row.version.pk] == requirements.version_facts(row.version)


# Query counts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [2, 12])
def test_inbox_query_count_does_not_grow_with_rows(world, django_assert_max_num_queries, rows):
    rita = UserFactory(username="rita")
    Policy.objects.create(kind=AssetKind.MODEL, stage=world.staging)
    for index in range(rows):
        asset, version = another_model(world, f"model-{index}")
        assign_perm("registry.request_promotion_asset", rita, asset)
        EdgeFactory(parent=VersionFactory(asset=asset), child=version)
        promotion = request_promotion(world, asset=asset, version=version)
        services.promotion_approve(actor=world.r2, source=Source.cli(), promotion_id=promotion.pk)
        request_promotion(world, actor=rita, asset=asset, version=version, stage=world.staging)
    client = browser(world.r1)
    # session, user; waiting for me (with how many wait: the header's badge shows that number); my requests;
    # the policies of their stages and the policies' teams; stage pointers and stage history of their
    # versions (requirements.standing_many, the promotion page's rule); recent activity: the ids of the
    # (few) assets r1 sees, then their latest events.
    with django_assert_max_num_queries(10):
        response = client.get("/")
    # r1 reviews both: the production requests (one approval so far) and rita's staging requests.
    waiting = response.context["waiting"]
    assert sorted((row.promotion.stage.name, row.approvals) for row in waiting) == sorted(
        [("production", 1)] * rows + [("staging", 0)] * rows
    )
    assert response.context["waiting_total"] == 2 * rows
    ritas = browser(rita).get("/").context
    assert len(ritas["mine"]) == min(rows, MY_REQUESTS_LIMIT)
    assert ritas["more_mine"] == (rows > MY_REQUESTS_LIMIT)
    assert len(response.context["activity"]) == min(20, 3 * rows)  # requested, approved, requested


@pytest.mark.parametrize("reviews", [1, 4])
def test_page_query_count_of_a_final_request_does_not_grow_with_reviews_or_metrics(
    world, django_assert_max_num_queries, reviews
):
    Policy.objects.filter(pk=world.policy.pk).update(required_approvals=reviews)
    extra = [UserFactory(username=f"x{i}") for i in range(reviews)]
    for person in extra:
        person.groups.add(world.reviewers)
    world.v2.metrics = {f"m{i}": i / 10 for i in range(reviews * 10)}
    world.v2.save()
    for _ in range(reviews):
        EdgeFactory(parent=VersionFactory(asset=AssetFactory(kind=AssetKind.DATASET)), child=world.v2)
    promotion = request_promotion(world)
    for person in extra:
        services.promotion_approve(actor=person, source=Source.cli(), promotion_id=promotion.pk)
    promotion.refresh_from_db()
    assert promotion.status == Status.APPLIED
    client = browser(world.r1)
    # session, user; the request; its reviews; the policies and their teams; the gate facts (3);
    # lineage (2); history; the header's inbox badge.
    with django_assert_max_num_queries(13):
        response = client.get(page(promotion.pk))
    assert len(response.context["reviews"]) == reviews


@pytest.mark.parametrize("approvals", [0, 3])
def test_page_query_count_of_an_open_request(world, django_assert_max_num_queries, approvals):
    Policy.objects.filter(pk=world.policy.pk).update(required_approvals=5)
    extra = [UserFactory(username=f"x{i}") for i in range(approvals)]
    for person in extra:
        person.groups.add(world.reviewers)
    promotion = request_promotion(world)
    for person in extra:
        services.promotion_approve(actor=person, source=Source.cli(), promotion_id=promotion.pk)
    client = browser(world.r1)
    # session, user; the request; its reviews; what to compare with (a stage pointer); the policies and
    # their teams; the gate facts (3); the approvals that count now (one query, requirements.
    # eligible_reviewers); the eligible people, named; the viewer's review grants and teams; the manage
    # check for the cancel button; lineage; history; the header's inbox badge. None of them grows with the
    # approvals.
    with django_assert_max_num_queries(18):
        response = client.get(page(promotion.pk))
    assert response.context["counted"] == approvals


def test_a_pending_request_past_its_expiry_shows_expired_and_viewing_it_writes_nothing(world):
    promotion = request_promotion(world)
    PromotionRequest.objects.filter(pk=promotion.pk).update(expires_at="2020-01-01T00:00:00Z")
    recorded = AuditEvent.objects.count()
    assert browser(world.r1).get("/").context["waiting"] == []
    response = browser(world.r1).get(page(promotion.pk))
    body = response.content.decode()
    assert ">Expired<" in body
    assert "This request is expired; it can no longer be reviewed." in body
    assert AuditEvent.objects.count() == recorded
    promotion.refresh_from_db()
    assert promotion.status == Status.PENDING
    # Acting on it is refused, and that records the expiry.
    browser(world.r1).post(f"/promotions/{promotion.pk}/approve", {"comment": ""})
    promotion.refresh_from_db()
    assert promotion.status == Status.EXPIRED
    assert AuditEvent.objects.order_by("-seq").values_list("action", flat=True).first() == "promotion.expired"
    assert not promotion.reviews.exists()


def test_reviewer_team_membership_alone_without_a_grant_shows_nothing(world):
    other = Group.objects.create(name="others")
    olga = UserFactory(username="olga")
    olga.groups.add(other)
    request_promotion(world)
    assert browser(olga).get("/").context["waiting"] == []


# The inbox's heads: the oldest waiting (with how many wait) and the newest of my requests ----------------


def test_the_inbox_lists_the_oldest_waiting_and_links_to_all_of_them(world, monkeypatch):
    monkeypatch.setattr("approvals.views.INBOX_LIMIT", 2)
    made = [request_promotion(world)]
    for index in range(2):
        asset, version = another_model(world, f"model-{index}")
        made.append(request_promotion(world, asset=asset, version=version))
    client = browser(world.r1)
    response = client.get("/")
    assert [row.promotion.pk for row in response.context["waiting"]] == [made[0].pk, made[1].pk]
    body = html.unescape(response.content.decode())
    assert 'Waiting for me <span class="count">(3)</span>' in body
    assert "Showing the 2 oldest of 3." in body
    assert 'href="/promotions/?show=waiting">All 3 waiting for you</a>' in body
    assert '<span class="badge" aria-hidden="true">3</span>' in body  # the header's badge: the same three
    listed = client.get("/promotions/?show=waiting")
    assert [row.promotion.pk for row in listed.context["rows"]] == [p.pk for p in made]  # oldest first
    assert "Waiting for your review" in listed.content.decode()
    # one of them reviewed: it leaves the inbox and the list
    services.promotion_approve(actor=world.r1, source=Source.cli(), promotion_id=made[0].pk)
    assert [row.promotion.pk for row in client.get("/promotions/?show=waiting").context["rows"]] == [
        made[1].pk,
        made[2].pk,
    ]
    assert "Showing the" not in client.get("/").content.decode()


def test_my_requests_show_the_newest_and_link_to_all_of_them(world, monkeypatch):
    monkeypatch.setattr("approvals.views.MY_REQUESTS_LIMIT", 1)
    first = request_promotion(world)
    asset, version = another_model(world, "other")
    second = request_promotion(world, asset=asset, version=version)
    # mia manages fraud only: its request is hers to follow, the other asset's is not
    client = browser(world.manager)
    response = client.get("/")
    assert [row.promotion.pk for row in response.context["mine"]] == [first.pk]
    assert response.context["more_mine"] is False
    world.manager.groups.add(world.reviewers)  # no change: managing is what makes a request hers
    assign_perm("registry.manage_asset", world.manager, asset)
    response = client.get("/")
    assert [row.promotion.pk for row in response.context["mine"]] == [second.pk]
    assert 'href="/promotions/?show=mine">All my requests</a>' in response.content.decode()
    listed = client.get("/promotions/?show=mine")
    assert [row.promotion.pk for row in listed.context["rows"]] == [second.pk, first.pk]  # newest first
    assert [row.promotion.pk for row in client.get("/promotions/?show=mine&name=other").context["rows"]] == [
        second.pk
    ]


def test_the_compiled_inbox_heads_answer_like_the_querysets_for_every_kind_of_user(world):
    """The inbox's first two queries are compiled once per shape (core.compiled): each person still gets
    their own rows, with the same annotations and related objects as the querysets give."""
    request_promotion(world)
    asset, version = another_model(world, "other")
    request_promotion(world, asset=asset, version=version)
    assign_perm("registry.request_promotion_asset", world.r2, asset)
    Policy.objects.create(kind=AssetKind.MODEL, stage=world.staging)
    request_promotion(world, actor=world.r2, asset=asset, version=version, stage=world.staging)
    admin = UserFactory(username="root", global_role="admin")
    assign_perm("registry.review_asset", world.outsider, asset)  # a review grant of one's own, not a team's
    people = [world.r1, world.r2, world.r3, world.manager, world.outsider, world.ci, admin]
    for _ in range(2):  # the second round runs on the compiled SQL
        for person in people:
            head, total = selectors.promotion_inbox_head_for_user(user=person, limit=10)
            expected = list(selectors.promotion_inbox_for_user(user=person))
            assert [p.pk for p in head] == [p.pk for p in expected], person
            assert total == len(expected) == selectors.promotion_inbox_count_for_user(user=person), person
            for got, want in zip(head, expected, strict=True):
                assert got.approvals_so_far == want.approvals_so_far
                assert got.latest_evaluation_metrics == want.latest_evaluation_metrics
                assert (got.asset.name, got.version.number, got.stage.name) == (
                    want.asset.name,
                    want.version.number,
                    want.stage.name,
                )
                assert got.requested_by.username == want.requested_by.username
                assert got.base_version_id == want.base_version_id
                assert got.created_at == want.created_at
            mine = selectors.promotion_requests_head_for_user(user=person, limit=10)
            assert [p.pk for p in mine] == [p.pk for p in selectors.promotion_requests_of_user(user=person)]
    assert selectors.promotion_inbox_head_for_user(user=world.r1, limit=10)[1] == 3  # through the team
    outsiders = selectors.promotion_inbox_head_for_user(user=world.outsider, limit=10)[0]
    assert {p.asset_id for p in outsiders} == {asset.pk} and len(outsiders) == 2  # through the direct grant


def test_the_compiled_promotion_lookup_answers_each_person_as_before(world):
    """A request by id (CI polls it) is found with SQL compiled once per shape: each person still gets it
    only if they may see its asset, with its reviews, and an id beyond any row's is simply not found."""
    from core.exceptions import NotFound

    promotion = request_promotion(world)
    services.promotion_approve(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk)
    admin = UserFactory(username="root", global_role="admin")
    for _ in range(2):  # the second round runs on the compiled SQL
        for person in (world.r1, world.ci, world.manager, admin):
            found = selectors.promotion_get_for_user(user=person, pk=promotion.pk)
            assert (found.pk, found.asset.name, found.version.number) == (promotion.pk, "fraud", 2)
            assert [review.reviewer.username for review in found.reviews.all()] == ["r1"]
        for pk in (promotion.pk, promotion.pk + 1, 2**63 - 1, 2**63, 2**200, 0):
            with pytest.raises(NotFound):
                selectors.promotion_get_for_user(
                    user=world.outsider if pk == promotion.pk else world.r1, pk=pk
                )
    assert browser(world.r1).get(f"/promotions/{2**64}/").status_code == 404
    assert world.client(token=world.ci_token).get(f"/api/v1/promotions/{2**64}").status_code == 404
