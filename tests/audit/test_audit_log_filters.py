"""What auditors found on the event log's filters and exports, each pinned: any asset kind by default, an
empty time range refused, asset names matched in part and in any case, sign-ins left out by default (a
toggle brings them back), export file names that carry the filters, and a CSV whose first
line is its header."""

import csv
import datetime as dt
import html
import io
import re

import pytest
from django.db import transaction
from django.utils import timezone

from audit import export
from audit.export import CSV_HEADER
from audit.models import Action
from audit.services import audit_record
from core.source import Source
from registry import services
from tests.audit.test_audit_pages import event_seqs, href, update
from tests.factories import AssetFactory
from tests.helpers import api_client

pytestmark = pytest.mark.django_db


def sign_in_events(user, count: int = 1) -> None:
    """A sign-in, a failed one, a lock and a sign-out per round, as the sign-in views write them."""
    actions = (Action.LOGIN_SUCCEEDED, Action.LOGIN_FAILED, Action.LOGIN_LOCKED, Action.LOGOUT)
    for _ in range(count):
        for action in actions:
            with transaction.atomic():
                audit_record(actor=user, action=action, target=user, source=Source.cli())


def actions_shown(response) -> list[str]:
    table = response.content.decode().split('id="audit-events"', 1)[1]
    return re.findall(r"<td[^>]*><code>([a-z_.]+)</code></td>", table)


def download(client, url: str):
    response = client.get(url)
    assert response.status_code == 200, url
    return response, b"".join(response.streaming_content)


def file_name(response) -> str:
    match = re.fullmatch(r'attachment; filename="([^"]+)"', response["Content-Disposition"])
    assert match, response["Content-Disposition"]
    return match.group(1)


@pytest.fixture
def signed_in(client, auditor):
    client.force_login(auditor)
    return client


# Asset kind: any, by default ------------------------------------------------------------------------------


def test_asset_kind_defaults_to_any_and_lists_every_kind(signed_in, admin):
    prompt = AssetFactory(kind="prompt", name="fraud-reply", description="d")
    update(admin, prompt, 1)
    response = signed_in.get("/audit/", {"asset_name": "fraud-reply"})
    body = response.content.decode()
    select = body.split('id="f-asset-kind"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="([a-z]*)"', select) == ["", "model", "prompt", "dataset"]
    assert "Any kind" in select and " selected" not in select
    # The old form sent kind=model with every name: a prompt's events never showed.
    assert actions_shown(response) == ["asset.updated"]


def test_a_chosen_kind_narrows_and_is_kept(signed_in, admin):
    for kind in ("model", "prompt"):
        update(admin, AssetFactory(kind=kind, name=f"fraud-{kind}", description="d"), 1)
    response = signed_in.get("/audit/", {"asset_kind": "prompt"})
    assert event_seqs(response) == [2]
    assert '<option value="prompt" selected>' in response.content.decode()


# Since after until: refused, saying so --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "until"),
    [("2026-02-01T00:00", "2026-01-01T00:00"), ("2026-01-01T00:00", "2026-01-01T00:00")],
)
def test_a_range_that_ends_before_it_starts_is_refused_inline(signed_in, admin, since, until):
    update(admin, AssetFactory(name="fraud", description="d"), 2)
    response = signed_in.get("/audit/", {"since": since, "until": until})
    assert response.status_code == 200
    body = response.content.decode()
    alert = body.split('id="filter-errors"', 1)[1].split("</div>", 1)[0]
    assert "Since" in alert and "Until" in alert and "must be later than" in alert
    # next to the fields, tied to them for screen readers
    assert re.search(r'id="f-since"[^>]*aria-invalid="true" aria-describedby="f-range-error"', body)
    assert re.search(r'id="f-until"[^>]*aria-invalid="true" aria-describedby="f-range-error"', body)
    assert '<p class="field-error" id="f-range-error">Until (' in body
    assert event_seqs(response) == []
    assert "No events shown: fix the filters above." in body
    # what was typed stays in the form
    assert f'name="since" type="datetime-local" step="1" value="{since}"' in body


def test_the_api_refuses_the_same_range_naming_the_field(auditor):
    api = api_client(auditor)
    query = "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"
    for url in (f"/api/v1/audit/events?{query}", f"/api/v1/audit/export?format=csv&{query}"):
        response = api.get(url)
        assert response.status_code == 400, url
        assert "until" in response.content.decode() and "Since" in response.content.decode()


# Asset names: in part, any case ---------------------------------------------------------------------------


def test_asset_name_matches_any_part_in_any_case(signed_in, admin):
    update(admin, AssetFactory(name="fraud-detector", description="d"), 1)  # seq 1
    update(admin, AssetFactory(name="card-fraud", description="d"), 1)  # seq 2
    update(admin, AssetFactory(name="churn", description="d"), 1)  # seq 3
    update(admin, AssetFactory(kind="prompt", name="fraud-reply", description="d"), 1)  # seq 4
    assert event_seqs(signed_in.get("/audit/", {"asset_name": "FRAUD"})) == [4, 2, 1]
    assert event_seqs(signed_in.get("/audit/", {"asset_name": "Fraud", "asset_kind": "model"})) == [2, 1]
    assert event_seqs(signed_in.get("/audit/", {"asset_name": "detect"})) == [1]
    assert event_seqs(signed_in.get("/audit/", {"asset_name": "%"})) == []  # a wildcard is a character
    # the exact form (links from an asset's timeline) still means exactly that asset
    assert event_seqs(signed_in.get("/audit/", {"asset": "model/fraud"})) == []
    assert event_seqs(signed_in.get("/audit/", {"asset": "model/card-fraud"})) == [2]


def test_a_part_of_a_name_that_most_assets_hold_is_refused(signed_in, admin, monkeypatch):
    monkeypatch.setattr("audit.web.filters.MAX_NAMED_ASSETS", 2)
    for name in ("fraud-a", "fraud-b", "fraud-c"):
        update(admin, AssetFactory(name=name, description="d"), 1)
    update(admin, AssetFactory(kind="prompt", name="fraud-d", description="d"), 1)
    response = signed_in.get("/audit/", {"asset_name": "fraud"})
    body = html.unescape(response.content.decode())
    assert "is in the names of more than 2 assets: type more of it or choose a kind." in body
    assert event_seqs(response) == []
    assert event_seqs(signed_in.get("/audit/", {"asset_name": "fraud", "asset_kind": "prompt"})) == [4]
    assert event_seqs(signed_in.get("/audit/", {"asset_name": "fraud-b"})) == [2]
    assert event_seqs(signed_in.get("/audit/", {"asset_kind": "model"})) == [3, 2, 1]  # a kind alone: no cap
    assert api_client(admin).get("/api/v1/audit/events?asset_name=fraud").status_code == 400


def test_the_api_and_export_match_names_in_part_too(auditor, admin):
    update(admin, AssetFactory(name="fraud-detector", description="d"), 2)
    update(admin, AssetFactory(name="churn", description="d"), 1)
    api = api_client(auditor)
    body = api.get("/api/v1/audit/events", {"asset_name": "FRAUD", "asset_kind": "model"}).json()
    assert [event["seq"] for event in body["results"]] == [1, 2]
    _, lines = download(api, "/api/v1/audit/export?format=jsonl&asset_name=fraud")
    assert len(lines.splitlines()) == 2
    assert api.get("/api/v1/audit/events", {"asset_kind": "robot"}).status_code == 400


# Sign-ins: left out by default, a toggle brings them back -------------------------------------------------


def test_sign_ins_are_left_out_by_default(signed_in, admin, auditor):
    sign_in_events(auditor, 3)  # seq 1-12
    update(admin, AssetFactory(name="fraud", description="d"), 1)  # seq 13
    response = signed_in.get("/audit/")
    assert actions_shown(response) == ["asset.updated"]
    body = response.content.decode()
    assert re.search(r'<input type="checkbox" name="exclude" value="sign-in" checked>', body)
    assert "Sign-ins and sign-outs are left out." in body


def test_the_toggle_shows_sign_ins_and_hides_them_again(signed_in, admin, auditor):
    sign_in_events(auditor)  # seq 1-4
    update(admin, AssetFactory(name="fraud", description="d"), 1)  # seq 5
    toggle = href(signed_in.get("/audit/"), "sign-ins-toggle")
    shown = signed_in.get(toggle)
    assert event_seqs(shown) == [5, 4, 3, 2, 1]
    assert {"login.succeeded", "login.failed", "login.locked", "logout"} <= set(actions_shown(shown))
    body = shown.content.decode()
    assert "Sign-ins and sign-outs are shown." in body
    assert not re.search(r'value="sign-in" checked', body)
    assert event_seqs(signed_in.get(href(shown, "sign-ins-toggle"))) == [5]


def test_unticking_every_box_in_the_form_includes_sign_ins(signed_in, admin, auditor):
    sign_in_events(auditor)
    update(admin, AssetFactory(name="fraud", description="d"), 1)
    # the form always sends an empty `exclude`, so that "nothing ticked" differs from "first visit"
    assert len(event_seqs(signed_in.get("/audit/?exclude="))) == 5


def test_any_group_of_actions_can_be_left_out(signed_in, admin, auditor):
    fraud = AssetFactory(name="fraud", description="d")
    update(admin, fraud, 1)  # seq 1
    services.asset_archive(actor=admin, source=Source.cli(), asset=fraud)  # seq 2
    sign_in_events(auditor)  # seq 3-6
    assert event_seqs(signed_in.get("/audit/", {"exclude": ["asset"]})) == [6, 5, 4, 3]
    assert event_seqs(signed_in.get("/audit/", {"exclude": ["asset", "sign-in"]})) == []
    assert event_seqs(signed_in.get("/audit/", {"exclude": ["asset.archived", "sign-in"]})) == [1]
    response = signed_in.get("/audit/", {"exclude": ["nonsense"]})
    assert 'id="filter-errors"' in response.content.decode() and event_seqs(response) == []


def test_the_api_leaves_out_only_what_it_is_asked_to(auditor, admin):
    sign_in_events(auditor)  # seq 1-4
    update(admin, AssetFactory(name="fraud", description="d"), 1)  # seq 5
    api = api_client(auditor)

    def seqs(query):
        return [event["seq"] for event in api.get(f"/api/v1/audit/events?{query}").json()["results"]]

    assert seqs("") == [1, 2, 3, 4, 5]  # the API's default is unchanged
    assert seqs("exclude=sign-in") == [5]
    assert seqs("exclude=login.failed,logout") == [1, 3, 5]
    assert seqs("exclude=login.failed&exclude=logout") == [1, 3, 5]
    assert api.get("/api/v1/audit/events?exclude=robot").status_code == 400


# Exports: named after their filters; the CSV starts with its header ---------------------------------------


def test_export_file_names_carry_the_filters(signed_in, admin):
    update(admin, AssetFactory(name="fraud", description="d"), 1)
    filters = {"asset_kind": "model", "asset_name": "fraud", "action": "promotion.approved"}
    page = signed_in.get("/audit/", {**filters, "since": "2026-01-01T00:00", "until": "2026-02-01T00:00"})
    names = {kind: file_name(signed_in.get(href(page, f"export-{kind}"))) for kind in ("csv", "jsonl")}
    stem = "audit-model-fraud-2026-01-01..2026-02-01-promotion.approved-without-sign-in"
    assert names == {"csv": f"{stem}-derived.csv", "jsonl": f"{stem}.jsonl"}
    everything = signed_in.get("/audit/", {"exclude": ""})
    today = timezone.now().astimezone(dt.UTC).strftime("%Y-%m-%d")
    assert file_name(signed_in.get(href(everything, "export-jsonl"))) == f"audit-all-{today}.jsonl"
    assert file_name(signed_in.get(href(everything, "export-csv"))) == f"audit-all-{today}-derived.csv"


def test_file_names_are_safe_whatever_the_filter_holds():
    since = dt.datetime(2026, 1, 1, 12, 30, tzinfo=dt.UTC)
    filters = export.Filters(actor='a"b/../c\\d e\r\nf', since=since, exclude_actions=("logout",))
    name = export.file_name(filters, "csv", now=timezone.now())
    assert name == "audit-2026-01-01T1230..-by-a-b-..-c-d-e-f-without-logout.csv"
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name)
    assert len(export.file_name(export.Filters(actor="x" * 500), "zip", now=timezone.now())) < 200


def test_the_csv_export_from_the_page_starts_with_its_header(signed_in, admin):
    update(admin, AssetFactory(name="fraud", description="d"), 2)
    _, content = download(signed_in, href(signed_in.get("/audit/"), "export-csv"))
    text = content.decode()
    assert text.splitlines()[0] == ",".join(CSV_HEADER)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == CSV_HEADER
    assert [row[4] for row in rows[1:-1]] == ["asset.updated", "asset.updated"]
    assert rows[-1][0].startswith("# NOT AUTHORITATIVE")  # the notice comes last, after the data


def test_the_bundle_manifest_says_what_was_left_out(signed_in, admin, auditor):
    import json
    import zipfile

    sign_in_events(auditor)
    update(admin, AssetFactory(name="fraud", description="d"), 1)
    _, content = download(signed_in, href(signed_in.get("/audit/", {"asset_name": "fra"}), "export-bundle"))
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(content)).read("manifest.json"))
    assert manifest["complete"] is False and manifest["events"] == 1
    assert manifest["filters"]["exclude"] == ["sign-in"]
    assert manifest["filters"]["exclude_actions"] == sorted(
        ["login.succeeded", "login.failed", "login.locked", "logout"]
    )
    assert manifest["filters"]["asset_name"] == "fra" and manifest["filters"]["asset_kind"] is None


# Query count ------------------------------------------------------------------------------------------------


def test_filtered_page_query_count_is_pinned(signed_in, admin, auditor, django_assert_num_queries):
    counts = []
    for name, events in (("fraud-few", 3), ("fraud-many", 70)):
        update(admin, AssetFactory(name=name, description="d"), events)
        sign_in_events(auditor, 2)
        query = {"asset_name": "FRAUD", "asset_kind": "model", "exclude": ["sign-in", "token"]}
        signed_in.get("/audit/", query)
        # session, user, the ids of the assets whose name holds the text, one page of events
        with django_assert_num_queries(4) as captured:
            response = signed_in.get("/audit/", query)
        assert len(event_seqs(response)) == min(3 + (events if name.endswith("many") else 0), 50)
        counts.append(len(captured))
    assert counts[0] == counts[1]
    assert html.unescape(href(response, "export-csv")).count("exclude=") == 2
