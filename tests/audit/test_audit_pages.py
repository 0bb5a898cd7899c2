"""The auditor pages: the event log (filters, keyset paging, exports), an asset's timeline, and integrity."""

import datetime as dt
import html
import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from audit.log import checkpoint_make
from audit.models import Action, AuditEvent, VerificationRun
from audit.signing import verifier_key
from core.source import Source
from registry import services
from tests.factories import AssetFactory

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"
PAGES = ["/audit/", "/audit/assets/model/fraud/", "/audit/integrity/"]


@pytest.fixture
def fraud():
    return AssetFactory(name="fraud", description="d")


@pytest.fixture
def other():
    return AssetFactory(name="other", description="d")


def update(actor, asset, count: int, *, prefix: str = "v") -> None:
    """count asset.updated events on asset, through the service (each one audited)."""
    for index in range(count):
        services.asset_update(actor=actor, source=Source.cli(), asset=asset, description=f"{prefix}{index}")


def event_seqs(response) -> list[int]:
    """The seqs of the rows of the event table, in page order."""
    table = response.content.decode().split('id="audit-events"', 1)[1]
    return [int(seq) for seq in re.findall(r'<th scope="row" class="num"[^>]*>(\d+)</th>', table)]


def href(response, element_id: str) -> str:
    match = re.search(rf'id="{element_id}" href="([^"]+)"', response.content.decode())
    assert match, f"no #{element_id}"
    return html.unescape(match.group(1))


def link(response, rel: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" rel="{rel}"', response.content.decode())
    return html.unescape(match.group(1)) if match else None


# Who may see the pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", PAGES)
def test_auditors_and_admins_see_the_pages(client, auditor, admin, fraud, url):
    for reader in (auditor, admin):
        client.force_login(reader)
        response = client.get(url)
        assert response.status_code == 200
        assert 'aria-current="page">Audit log' in response.content.decode()


@pytest.mark.parametrize("url", PAGES)
def test_anyone_else_signed_in_gets_403(client, outsider, fraud, url):
    client.force_login(outsider)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", [*PAGES, "/audit/integrity/verify"])
def test_anonymous_is_sent_to_sign_in(client, fraud, url):
    response = client.post(url) if url.endswith("verify") else client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{LOGIN}?next=")


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/audit/"),
        ("post", "/audit/assets/model/fraud/"),
        ("delete", "/audit/integrity/"),
        ("get", "/audit/integrity/verify"),
    ],
)
def test_wrong_method_is_405(client, auditor, fraud, method, url):
    client.force_login(auditor)
    assert getattr(client, method)(url).status_code == 405


def test_non_auditor_cannot_run_verification(client, outsider):
    client.force_login(outsider)
    assert client.post("/audit/integrity/verify").status_code == 403
    assert not VerificationRun.objects.exists()


@pytest.mark.parametrize("url", ["/audit/assets/model/missing/", "/audit/assets/robot/fraud/"])
def test_timeline_of_an_unknown_asset_is_404(client, auditor, fraud, url):
    client.force_login(auditor)
    assert client.get(url).status_code == 404


# The event list -------------------------------------------------------------------------------------------


def test_event_list_shows_events_newest_first_with_readable_changes(client, auditor, admin, fraud):
    update(admin, fraud, 3)
    client.force_login(auditor)
    response = client.get("/audit/")
    body = response.content.decode()
    assert event_seqs(response) == [3, 2, 1]
    for element_id in ("audit-filters", "audit-events", "export-bundle", "export-jsonl", "export-csv"):
        assert f'id="{element_id}"' in body
    assert "asset.updated" in body and "root" in body and "model/fraud" in body
    # before → after of the last change, in a details element
    assert "<summary>description</summary>" in body
    assert "<del>v1</del>" in body and "<ins>v2</ins>" in body
    assert "derived, not authoritative" in body
    assert '<a href="/audit/assets/model/fraud/">model/fraud</a>' in body


def test_changes_without_before_and_after_are_listed_as_they_are(client, auditor, admin, fraud):
    services.asset_archive(actor=admin, source=Source.cli(), asset=fraud, reason="retired")
    client.force_login(auditor)
    body = client.get("/audit/").content.decode()
    assert "<dt>reason</dt><dd>retired</dd>" in body


def test_filters_narrow_the_list(client, auditor, admin, outsider, fraud, other):
    update(admin, fraud, 2)  # seq 1, 2
    update(admin, other, 2)  # seq 3, 4
    services.asset_archive(actor=admin, source=Source.cli(), asset=other)  # seq 5
    client.force_login(auditor)
    assert event_seqs(client.get("/audit/")) == [5, 4, 3, 2, 1]
    assert event_seqs(client.get("/audit/", {"asset_kind": "model", "asset_name": "fraud"})) == [2, 1]
    assert event_seqs(client.get("/audit/", {"asset": "model/other"})) == [5, 4, 3]
    assert event_seqs(client.get("/audit/", {"action": Action.ASSET_ARCHIVED})) == [5]
    assert event_seqs(client.get("/audit/", {"actor": "root"})) == [5, 4, 3, 2, 1]
    assert event_seqs(client.get("/audit/", {"actor": "nobody"})) == []
    assert event_seqs(client.get("/audit/", {"asset_kind": "prompt", "asset_name": "fraud"})) == []
    later = timezone.now() + dt.timedelta(hours=1)
    assert event_seqs(client.get("/audit/", {"since": later.strftime("%Y-%m-%dT%H:%M")})) == []
    until = later.strftime("%Y-%m-%dT%H:%M:%S")
    assert event_seqs(client.get("/audit/", {"until": until})) == [5, 4, 3, 2, 1]


def test_an_invalid_filter_is_reported_not_ignored(client, auditor, admin, fraud):
    update(admin, fraud, 2)
    client.force_login(auditor)
    response = client.get("/audit/", {"since": "yesterday"})
    assert response.status_code == 200
    assert 'class="error" role="alert"' in response.content.decode()
    assert event_seqs(response) == []


def test_the_filter_form_keeps_its_values(client, auditor, fraud):
    client.force_login(auditor)
    body = client.get(
        "/audit/", {"action": "asset.updated", "asset_kind": "model", "asset_name": "fraud", "actor": "root"}
    ).content.decode()
    assert '<option value="asset.updated" selected>' in body
    assert 'name="asset_name" value="fraud"' in body
    assert 'name="actor" value="root"' in body


def test_export_links_carry_the_filters(client, auditor, admin, fraud, other):
    update(admin, fraud, 2)
    update(admin, other, 2)
    client.force_login(auditor)
    filters = {"asset_kind": "model", "asset_name": "fraud", "action": "asset.updated", "actor": "root"}
    response = client.get("/audit/", {**filters, "since": "2000-01-01T00:00"})
    for kind in ("csv", "jsonl", "bundle"):
        url = urlsplit(href(response, f"export-{kind}"))
        assert url.path == "/api/v1/audit/export"
        assert parse_qs(url.query) == {
            "format": [kind],
            "asset_kind": ["model"],
            "asset_name": ["fraud"],
            "action": ["asset.updated"],
            "actor": ["root"],
            "since": ["2000-01-01T00:00"],
            "exclude": ["sign-in"],
        }
    # The links work with the session and export only what the page shows.
    exported = client.get(href(response, "export-jsonl"))
    assert exported.status_code == 200
    lines = b"".join(exported.streaming_content).decode().splitlines()
    assert [bytes(AuditEvent.objects.get(seq=seq).body).decode() for seq in (1, 2)] == lines
    csv = b"".join(client.get(href(response, "export-csv")).streaming_content).decode()
    assert "NOT AUTHORITATIVE" in csv and "model/other" not in csv


def test_unfiltered_export_links_name_only_the_format(client, auditor):
    client.force_login(auditor)
    response = client.get("/audit/", {"exclude": ""})  # sign-ins included: nothing left out
    assert href(response, "export-bundle") == "/api/v1/audit/export?format=bundle"
    # by default the list, and so its exports, leave out sign-ins
    assert (
        href(client.get("/audit/"), "export-bundle") == "/api/v1/audit/export?format=bundle&exclude=sign-in"
    )


def test_keyset_paging_walks_older_and_back(client, auditor, admin, fraud):
    update(admin, fraud, 60)
    client.force_login(auditor)
    first = client.get("/audit/")
    assert event_seqs(first) == list(range(60, 10, -1))
    assert link(first, "prev") is None
    older = client.get(link(first, "next"))
    assert event_seqs(older) == list(range(10, 0, -1))
    assert link(older, "next") is None
    back = client.get(link(older, "prev"))
    assert event_seqs(back) == list(range(60, 10, -1))


@pytest.mark.parametrize("key", ["before", "after"])
def test_a_forged_page_key_pages_to_nothing(client, auditor, admin, fraud, key):
    update(admin, fraud, 2)
    client.force_login(auditor)
    response = client.get("/audit/", {key: "9" * 40})
    assert response.status_code == 200
    assert event_seqs(response) == ([2, 1] if key == "before" else [])
    assert event_seqs(client.get("/audit/", {key: "junk"})) == [2, 1]


def test_paging_keeps_the_filters(client, auditor, admin, fraud, other):
    update(admin, fraud, 55)
    update(admin, other, 3)
    client.force_login(auditor)
    first = client.get("/audit/", {"asset_kind": "model", "asset_name": "fraud"})
    assert "asset_kind=model&asset_name=fraud&exclude=sign-in" in link(first, "next")
    assert event_seqs(client.get(link(first, "next"))) == [5, 4, 3, 2, 1]


def event_list_queries(client, auditor, admin, asset, count: int) -> int:
    update(admin, asset, count, prefix=f"n{count}-")
    client.force_login(auditor)
    client.get("/audit/")  # warm up: the first request of a client may load extra (e.g. content types)
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/audit/", {"asset_kind": "model", "asset_name": asset.name})
    assert len(event_seqs(response)) == min(count, 50)
    return len(captured)


def test_event_list_query_count_is_pinned(client, auditor, admin, django_assert_max_num_queries):
    few = event_list_queries(client, auditor, admin, AssetFactory(name="few"), 5)
    many = event_list_queries(client, auditor, admin, AssetFactory(name="many"), 60)
    assert few == many
    update(admin, AssetFactory(name="pinned"), 3)
    # session, user, the asset filter's id lookup, one page of events (51 rows: no COUNT(*), no OFFSET)
    with django_assert_max_num_queries(4):
        client.get("/audit/", {"asset_kind": "model", "asset_name": "pinned", "action": "asset.updated"})


# The asset timeline ---------------------------------------------------------------------------------------


def test_asset_timeline_shows_only_that_asset(client, auditor, admin, fraud, other):
    update(admin, fraud, 2)
    update(admin, other, 2)
    client.force_login(auditor)
    response = client.get("/audit/assets/model/fraud/")
    assert response.status_code == 200
    assert event_seqs(response) == [2, 1]
    assert parse_qs(urlsplit(href(response, "export-bundle")).query) == {
        "format": ["bundle"],
        "asset": ["model/fraud"],
    }


def test_asset_timeline_query_count_is_pinned(client, auditor, admin, django_assert_max_num_queries):
    counts = []
    for name, events in (("few", 5), ("many", 60)):
        asset = AssetFactory(name=name)
        update(admin, asset, events)
        client.force_login(auditor)
        client.get(f"/audit/assets/model/{name}/")
        # session, user, the asset (visibility included), one page of events
        with django_assert_max_num_queries(4) as captured:
            response = client.get(f"/audit/assets/model/{name}/")
        assert len(event_seqs(response)) == min(events, 50)
        counts.append(len(captured))
    assert counts[0] == counts[1]


# Integrity ------------------------------------------------------------------------------------------------


def test_integrity_shows_the_latest_checkpoint_and_the_verifier_key(client, auditor, admin, fraud):
    update(admin, fraud, 3)
    checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    update(admin, fraud, 2)
    checkpoint = checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    client.force_login(auditor)
    body = client.get("/audit/integrity/").content.decode()
    assert '<dd id="checkpoint-size">5 events</dd>' in body
    assert bytes(checkpoint.root_hash).hex() in body
    assert f'<pre class="note" id="checkpoint-note">{html.escape(checkpoint.note)}</pre>' in body
    assert html.escape(verifier_key()) in body
    assert "The log has not been verified yet." in body


def test_integrity_without_a_checkpoint(client, auditor):
    client.force_login(auditor)
    assert "No checkpoint has been signed yet" in client.get("/audit/integrity/").content.decode()


def test_verify_button_records_a_run(client, auditor, admin, fraud):
    update(admin, fraud, 4)
    checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
    client.force_login(auditor)
    response = client.post("/audit/integrity/verify", follow=True)
    assert response.redirect_chain == [("/audit/integrity/", 302)]
    run = VerificationRun.objects.get()
    assert run.ok and run.events == 4 and run.checkpoints == 1
    body = response.content.decode()
    assert "The log verified: 4 events, 1 signed checkpoints." in body
    assert '<span class="badge ok">ok</span>' in body


def test_admins_may_verify_too(client, admin):
    client.force_login(admin)
    assert client.post("/audit/integrity/verify").status_code == 302
    assert VerificationRun.objects.count() == 1


def test_a_failed_run_is_shown_with_its_first_bad_seq(client, auditor):
    VerificationRun.objects.create(
        started_at=timezone.now(),
        ok=False,
        events=6,
        checkpoints=1,
        first_bad_seq=7,
        problem="altered: seq 7",
    )
    client.force_login(auditor)
    body = client.get("/audit/integrity/").content.decode()
    assert '<span class="badge bad">FAILED</span>' in body
    assert '<td class="num">7</td>' in body and "altered: seq 7" in body


def test_integrity_query_count_is_pinned(client, auditor, admin, fraud, django_assert_max_num_queries):
    counts = []
    for runs in (2, 30):
        update(admin, fraud, 2, prefix=f"r{runs}-")
        checkpoint_make(origin=settings.AUDIT_LOG_ORIGIN)
        for _ in range(runs - VerificationRun.objects.count()):
            VerificationRun.objects.create(started_at=timezone.now(), ok=True, events=1, checkpoints=1)
        client.force_login(auditor)
        client.get("/audit/integrity/")
        # session, user, the latest checkpoint, the log's head, the last 20 verification runs
        with django_assert_max_num_queries(5) as captured:
            client.get("/audit/integrity/")
        counts.append(len(captured))
    assert counts[0] == counts[1]


# As a person would, on the demo data -----------------------------------------------------------------------


def test_the_pages_render_on_the_demo_data(client, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("load_demo", stdout=io.StringIO())
    client.force_login(User.objects.get(username="auditor"))
    seqs = event_seqs(client.get("/audit/"))
    assert seqs == list(range(AuditEvent.objects.count(), 0, -1))[:50]
    assert event_seqs(client.get("/audit/", {"asset_kind": "model", "asset_name": "fraud-detector"}))
    assert client.get("/audit/assets/model/fraud-detector/").status_code == 200
    assert client.get("/audit/assets/prompt/support-reply/").status_code == 200
    assert client.get("/audit/integrity/").status_code == 200
