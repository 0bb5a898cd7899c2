"""The answer about a promotion request, built by a plain function (approvals.payloads.facts_payload) and, for
CI's poll, from one statement's plain values: the same bytes as the serializer that defines it
(PromotionOut), over many states of a request."""

import datetime as dt
import itertools
import json

import pytest
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from approvals import selectors
from approvals.models import Decision, PromotionRequest, Review, Status
from approvals.payloads import PromotionFacts, PromotionOut, callback_body, facts_payload, promotion_payload
from registry.models import AssetKind
from tests.factories import AssetFactory, PromotionFactory, UserFactory, VersionFactory
from tests.helpers import api_client

pytestmark = pytest.mark.django_db

CIS = (
    {},
    {"commit": "0123abc", "ref": "refs/heads/main", "run_url": "https://ci.example.com/run/7"},
    {"commit": "fedcba9876", "attempt": 3, "retry": True, "note": 'ünïcode ✓ "quoted"', "empty": None},
)


def _states(asset, versions, reviewers):
    """Requests in every status, open and final, due and not, with and without what is optional."""
    now = timezone.now()
    later, earlier = now + dt.timedelta(days=2), now - dt.timedelta(minutes=5)
    made = []
    for index, (status, due, ci) in enumerate(itertools.product(Status.values, (False, True), CIS)):
        final = status not in ("pending", "approved")
        promotion = PromotionFactory(
            version=versions[index % len(versions)],
            asset=asset,
            status=status,
            status_reason="" if status == "pending" else f"why: {status} «{index}»",
            revision=1 + index % 4,
            rollback=index % 3 == 0,
            justification="line one\nline two <b>&</b> ✓" if index % 2 else "better auc",
            ci=ci,
            callback_url="https://hooks.example.com/p?x=1" if index % 4 == 1 else "",
            base_version=versions[0] if index % 2 else None,
            expires_at=earlier if due else later,
            decided_at=now - dt.timedelta(seconds=index, microseconds=index) if final else None,
            applied_at=now if status == "applied" else None,
            policy_snapshot={
                "policy_id": None,
                "required_approvals": 1 + index % 3,
                "reviewer_teams": [],
                "allow_author_approval": False,
                "gates": [{"type": "metric", "metric": "auc", "op": ">=", "value": 0.9}] if index % 2 else [],
                "apply_on_approval": bool(index % 2),
            },
        )
        if status == "superseded":
            promotion.superseded_by = made[-1] if made else None
            promotion.save(update_fields=["superseded_by"])
        decisions = (Decision.APPROVE, Decision.REJECT, Decision.APPROVE)[: index % 4]
        for reviewer, decision in zip(reviewers, decisions, strict=False):
            Review.objects.create(
                promotion=promotion,
                reviewer=reviewer,
                decision=decision,
                comment=f"{decision} ✓" * (index % 2),
            )
        made.append(promotion)
    return made


@pytest.fixture
def requests_of_every_kind():
    reviewers = [UserFactory(username=name) for name in ("rev-a", "rev-ü", "rev-c")]
    made = []
    for kind in (AssetKind.MODEL, AssetKind.PROMPT, AssetKind.DATASET):
        asset = AssetFactory(kind=kind, name=f"{kind}-one")
        versions = [VersionFactory(asset=asset) for _ in range(2)]
        made += _states(asset, versions, reviewers)
    return made


def test_the_answer_is_the_serializers_in_every_state(requests_of_every_kind):
    admin = UserFactory(username="root", global_role="admin")
    client = api_client(admin)
    renderer = JSONRenderer()
    assert len(requests_of_every_kind) == 3 * 8 * 2 * 3
    for promotion in requests_of_every_kind:
        loaded = selectors.promotion_get_for_user(user=admin, pk=promotion.pk)
        defined = PromotionOut(loaded).data
        assert promotion_payload(loaded) == defined
        assert renderer.render(promotion_payload(loaded)) == renderer.render(defined)
        polled = selectors.promotion_poll_for_user(user=admin, pk=promotion.pk)
        assert polled == PromotionFacts.of(loaded)
        assert renderer.render(facts_payload(polled)) == renderer.render(defined)
        answer = client.get(f"/api/v1/promotions/{promotion.pk}")
        assert answer.status_code == 200
        assert answer.content == renderer.render(defined)
        assert answer["ETag"] == f'"promotion-{loaded.pk}-{loaded.revision}"'
        assert ("Retry-After" in answer) == loaded.is_open
        if promotion.expires_at < timezone.now() and promotion.status in ("pending", "approved"):
            assert defined["status"] == "expired" and defined["final"] is True


def test_the_answer_is_the_serializers_in_another_time_zone(requests_of_every_kind):
    admin = UserFactory(username="root", global_role="admin")
    with timezone.override("Asia/Kolkata"):
        for promotion in requests_of_every_kind[:12]:
            loaded = selectors.promotion_get_for_user(user=admin, pk=promotion.pk)
            assert promotion_payload(loaded) == PromotionOut(loaded).data
            assert promotion_payload(loaded)["created_at"].endswith("+05:30")


def test_the_callback_body_is_unchanged(world):
    promotion = world.request().json()
    world.act(world.r1, promotion["id"], "approve")
    world.act(world.r2, promotion["id"], "approve")
    loaded = selectors.promotion_get_for_user(user=world.manager, pk=promotion["id"])
    assert loaded.status == Status.APPLIED
    body = json.dumps({"type": "promotion.applied", "data": PromotionOut(loaded).data}).encode()
    assert callback_body(loaded) == body


def test_a_poll_is_one_statement_after_the_token_whatever_its_reviews(world, django_assert_num_queries):
    """The request and its reviews are read together (the token's lookup is the other statement)."""
    promotion = world.request().json()
    ci = world.client(token=world.ci_token)
    url = f"/api/v1/promotions/{promotion['id']}"
    for reviewer in (None, world.r1, world.r3):
        if reviewer is not None:
            Review.objects.create(
                promotion_id=promotion["id"], reviewer=reviewer, decision=Decision.APPROVE, comment="ok"
            )
        with django_assert_num_queries(2):
            body = ci.get(url).json()
        assert [review["reviewer"] for review in body["reviews"]] == ["r1", "r3"][: len(body["reviews"])]
        assert body["approvals"] == len(body["reviews"])
        etag = ci.get(url)["ETag"]
        with django_assert_num_queries(2):
            assert ci.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_a_poll_answers_404_for_what_the_caller_cannot_see(world):
    promotion = world.request().json()
    url = f"/api/v1/promotions/{promotion['id']}"
    assert world.client(world.r1).get(url).status_code == 200  # through the team's grant
    assert world.client(world.manager).get(url).status_code == 200  # a direct grant
    outsider = world.client(world.outsider).get(url)
    missing = world.client(world.r1).get(f"/api/v1/promotions/{promotion['id'] + 1}")
    for answer in (outsider, missing):
        assert answer.status_code == 404
        assert answer.json()["type"] == "not-found"
    assert outsider.content.replace(b"/" + str(promotion["id"]).encode(), b"") == missing.content.replace(
        b"/" + str(promotion["id"] + 1).encode(), b""
    )
    for pk in (0, 2**63 - 1, 2**63, 2**64):
        assert world.client(world.r1).get(f"/api/v1/promotions/{pk}").status_code == 404
    for _ in range(2):  # the second round runs on the compiled SQL
        for person in (world.r1, world.ci, world.manager):
            assert selectors.promotion_poll_for_user(user=person, pk=promotion["id"]).id == promotion["id"]
    PromotionRequest.objects.filter(pk=promotion["id"]).update(status=Status.CANCELLED)
    assert world.client(world.outsider).get(url).status_code == 404


def test_a_due_request_reads_as_expired_on_both_paths(world):
    promotion = world.request().json()
    world.act(world.r1, promotion["id"], "approve")
    PromotionRequest.objects.filter(pk=promotion["id"]).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    polled = selectors.promotion_poll_for_user(user=world.ci, pk=promotion["id"])
    loaded = selectors.promotion_get_for_user(user=world.ci, pk=promotion["id"])
    assert (polled.status, polled.revision, polled.status_reason) == (
        loaded.status,
        loaded.revision,
        loaded.status_reason,
    )
    recorded = PromotionRequest.objects.get(pk=promotion["id"])
    assert (recorded.status, recorded.revision) == (Status.PENDING, 2)  # nothing written
    assert polled.status == Status.EXPIRED and polled.revision == 3
    assert facts_payload(polled) == PromotionOut(loaded).data


def test_the_list_shows_each_request_as_the_serializer_does(requests_of_every_kind):
    admin = UserFactory(username="root", global_role="admin")
    client = api_client(admin)
    shown, url = [], "/api/v1/promotions?page_size=50"
    while url:
        page = client.get(url).json()
        shown += page["results"]
        url = page["next"]
    assert len(shown) == len(requests_of_every_kind)
    # The list shows each request as recorded (a due one is not read as expired there).
    defined = PromotionOut(selectors.promotion_list_for_user(user=admin), many=True).data
    assert shown == json.loads(JSONRenderer().render(sorted(defined, key=lambda row: -row["id"])))
