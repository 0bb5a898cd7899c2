"""/metrics: only to the configured token or network (404 otherwise), latency labelled by route pattern, the
promotion counter counting committed events only, and the audit gauges computed at scrape."""

import datetime as dt

import pytest
from django.conf import settings
from django.db import transaction
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY

from audit.log import checkpoint_make
from audit.models import Action, Checkpoint, VerificationRun
from audit.services import audit_record
from core.source import Source
from tests.helpers import World

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-" + "x" * 32


@pytest.fixture
def world(db):
    return World()


@pytest.fixture
def scraper(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []
    return Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def scrape(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode()


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# Access -------------------------------------------------------------------------------------------------


def test_the_token_opens_the_metrics(scraper):
    text = scrape(scraper)
    assert "# TYPE registry_http_request_duration_seconds histogram" in text
    assert "# TYPE registry_promotions_total counter" in text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_AUTHORIZATION": "Bearer wrong"},
        {"HTTP_AUTHORIZATION": TOKEN},
        {"HTTP_AUTHORIZATION": "Basic x"},
    ],
)
def test_anyone_else_gets_the_404_of_an_unknown_path(settings, headers):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    client = Client(**headers)
    refused, unknown = client.get("/metrics"), client.get("/no-such-page")
    assert refused.status_code == unknown.status_code == 404
    assert refused.content == unknown.content.replace(b"/no-such-page", b"/metrics")


def test_an_allowed_network_opens_the_metrics_without_a_token(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    assert "registry_http_responses_total" in scrape(Client(REMOTE_ADDR="127.0.0.5"))
    assert Client(REMOTE_ADDR="192.0.2.1").get("/metrics").status_code == 404


def test_nothing_configured_means_nobody(settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    assert Client(HTTP_AUTHORIZATION="Bearer ").get("/metrics").status_code == 404
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404


# Requests by route ---------------------------------------------------------------------------------------


def test_latency_and_answers_are_labelled_by_route_pattern_not_path(api, scraper):
    route = "api/v1/models/<str:name>"
    before = value("registry_http_request_duration_seconds_count", route=route, method="GET")
    before_4xx = value("registry_http_responses_total", route=route, status_class="4xx")
    for name in ("first-missing", "second-missing", "third-missing"):
        assert api.get(f"/api/v1/models/{name}").status_code == 404
    assert value("registry_http_request_duration_seconds_count", route=route, method="GET") == before + 3
    assert value("registry_http_responses_total", route=route, status_class="4xx") == before_4xx + 3
    text = scrape(scraper)
    assert "first-missing" not in text
    assert f'route="{route}"' in text


def test_unknown_paths_share_one_label(client):
    before = value("registry_http_responses_total", route="unmatched", status_class="4xx")
    client.get("/scan/a")
    client.get("/scan/b")
    assert value("registry_http_responses_total", route="unmatched", status_class="4xx") == before + 2


# Promotions by outcome -------------------------------------------------------------------------------------


def test_each_committed_decision_is_counted_once(world, django_capture_on_commit_callbacks):
    requested = value("registry_promotions_total", outcome="requested")
    approved = value("registry_promotions_total", outcome="approved")
    applied = value("registry_promotions_total", outcome="applied")
    with django_capture_on_commit_callbacks(execute=True):
        pk = world.request().json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        world.act(world.r1, pk, "approve")
    with django_capture_on_commit_callbacks(execute=True):
        assert world.act(world.r2, pk, "approve").json()["status"] == "applied"
    assert value("registry_promotions_total", outcome="requested") == requested + 1
    assert value("registry_promotions_total", outcome="approved") == approved + 2
    assert value("registry_promotions_total", outcome="applied") == applied + 1


def test_a_rolled_back_decision_is_not_counted(admin, django_capture_on_commit_callbacks):
    before = value("registry_promotions_total", outcome="rejected")
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        audit_record(actor=admin, action=Action.PROMOTION_REJECTED, target=admin, source=Source.cli())
        raise RuntimeError("the decision failed after its event")
    assert value("registry_promotions_total", outcome="rejected") == before
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        audit_record(actor=admin, action=Action.PROMOTION_REJECTED, target=admin, source=Source.cli())
    assert value("registry_promotions_total", outcome="rejected") == before + 1


def test_other_events_are_not_promotions(admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        audit_record(actor=admin, action=Action.ASSET_UPDATED, target=admin, source=Source.cli())
    assert callbacks == []


# The audit gauges -----------------------------------------------------------------------------------------


def gauge(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_audit_gauges_are_computed_when_scraped(scraper, admin):
    text = scrape(scraper)
    assert gauge(text, "registry_audit_checkpoint_age_seconds") is None  # no checkpoint yet: no sample
    with transaction.atomic():
        audit_record(actor=admin, action=Action.ASSET_UPDATED, target=admin, source=Source.cli())
    checkpoint = checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    assert Checkpoint.objects.count() == 1
    VerificationRun.objects.create(
        started_at=timezone.now() - dt.timedelta(seconds=5), ok=False, events=1, checkpoints=1, problem="x"
    )
    text = scrape(scraper)
    age = gauge(text, "registry_audit_checkpoint_age_seconds")
    assert age is not None and 0 <= age < 60
    assert gauge(text, "registry_audit_checkpoint_tree_size") == checkpoint.tree_size
    assert 0 <= gauge(text, "registry_audit_verification_age_seconds") < 60
    assert gauge(text, "registry_audit_verification_ok") == 0


# The outbox gauges ----------------------------------------------------------------------------------------


def test_outbox_gauges_count_what_waits_and_how_late(scraper):
    from approvals.models import OutboxMessage

    text = scrape(scraper)
    assert gauge(text, "registry_outbox_pending") == 0
    assert gauge(text, "registry_outbox_lag_seconds") == 0
    now = timezone.now()

    def message(n: int, status: str, due: dt.datetime) -> None:
        OutboxMessage.objects.create(
            webhook_id=f"msg_test_{n}",
            event_type="promotion.applied",
            url="http://127.0.0.1:9/hook",
            payload=b"{}",
            label=f"message {n}",
            status=status,
            next_attempt_at=due,
        )

    message(1, OutboxMessage.State.PENDING, now - dt.timedelta(seconds=120))  # overdue: the lag
    message(2, OutboxMessage.State.PENDING, now - dt.timedelta(seconds=10))
    message(3, OutboxMessage.State.PENDING, now + dt.timedelta(hours=1))  # a retry not due yet: no lag
    message(4, OutboxMessage.State.FAILED, now - dt.timedelta(days=1))
    message(5, OutboxMessage.State.DELIVERED, now - dt.timedelta(days=2))
    text = scrape(scraper)
    assert gauge(text, "registry_outbox_pending") == 3
    assert gauge(text, "registry_outbox_failed") == 1
    assert 120 <= gauge(text, "registry_outbox_lag_seconds") < 180
