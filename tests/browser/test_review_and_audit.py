"""A release, end to end in a real browser: reviewers approve, the requester is refused, an auditor exports.

Demo data (load_demo): fraud-detector v2 is in production and ci-bot asks for v3; reviewer1 opens
the inbox and the request, sees the metric deltas and the gates, approves; reviewer2 approves and the stage
moves; a person who requested another promotion sees that approving it is refused for them; an auditor
filters the log, downloads the verifiable bundle, and it verifies offline. Markdown in a model card is
rendered without running a script.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from guardian.shortcuts import assign_perm

from accounts.models import User
from approvals.models import PromotionRequest
from approvals.services import promotion_request
from core.source import Source
from registry.models import Asset, AssetVersion, Stage, StagePointer
from registry.services import stage_set
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
VERIFIER = Path(__file__).resolve().parents[2] / "audit" / "verify_bundle.py"


@pytest.fixture
def demo(db, settings, tmp_path):
    """The demo data as `make run` loads it: fraud-detector v2 serves production, v3 waits for review."""
    from django.core.management import call_command

    settings.VAR_DIR = tmp_path
    call_command("load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    fraud = Asset.objects.get(kind="model", name="fraud-detector")
    production, staging = Stage.objects.get(name="production"), Stage.objects.get(name="staging")
    assert StagePointer.objects.get(asset=fraud, stage=production).version.number == 2
    promotion = PromotionRequest.objects.get(asset=fraud, version__number=3, status="pending")
    return {"fraud": fraud, "promotion": promotion, "production": production, "staging": staging}


def test_two_reviewers_approve_and_the_stage_moves(open_page, shots, demo):
    pk = demo["promotion"].pk
    page = open_page("reviewer1")
    assert page.locator("#waiting").get_by_role("link", name=f"#{pk}").is_visible()
    shots(page, "reviewer1-inbox")
    page.locator("#waiting").get_by_role("link", name=f"#{pk}").click()
    page.wait_for_load_state()
    assert page.locator("#status").inner_text().strip().lower() == "pending"
    deltas = page.locator("#metric-deltas").inner_text()
    assert "auc" in deltas and "better" in deltas.lower()
    gates = page.locator("#gate-checklist").inner_text().lower()
    assert "staging" in gates and "pass" in gates
    shots(page, "reviewer1-promotion")
    page.fill("#approve_comment", "AUC up, latency flat")
    page.locator("#approve-form button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#status").inner_text().strip().lower() == "pending"
    assert "reviewer1" in page.locator("#reviews").inner_text()
    shots(page, "reviewer1-approved")

    page = open_page("reviewer2")
    page.goto(f"/promotions/{pk}/")
    page.locator("#approve-form button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#status").inner_text().strip().lower() == "applied"
    shots(page, "reviewer2-applied")
    pointer = StagePointer.objects.get(asset=demo["fraud"], stage=demo["production"])
    assert pointer.version.number == 3
    page.goto("/registry/model/fraud-detector/")
    assert f"/promotions/{pk}/" in page.content()
    shots(page, "asset-history")


def test_the_requester_sees_that_approving_is_refused(open_page, shots, demo):
    rita = UserFactory(username="rita", password="rita-demo-password")
    prompt = Asset.objects.get(kind="prompt", name="support-reply")
    rita.groups.add(*User.objects.get(username="reviewer1").groups.all())
    assign_perm("registry.request_promotion_asset", rita, prompt)
    assign_perm("registry.contribute_asset", rita, prompt)
    stage_set(
        actor=rita,
        source=Source.cli(),
        asset=prompt,
        stage=demo["staging"],
        version=prompt.versions.get(number=3),
    )
    mine = promotion_request(
        actor=rita,
        source=Source.cli(),
        asset=prompt,
        version=prompt.versions.get(number=3),
        stage=demo["production"],
        justification="shorter answers",
    )
    page = open_page("rita")
    page.goto(f"/promotions/{mine.pk}/")
    refusal = page.locator("#review-refusal")
    assert refusal.is_visible()
    assert "requested" in refusal.inner_text()
    assert page.locator("#approve-form").count() == 0
    shots(page, "requester-refused")
    # Posting anyway (a crafted form) is refused by the service and says why.
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    with page.expect_navigation():
        page.evaluate(
            """([url, token]) => {
                 const f = document.createElement('form'); f.method = 'post'; f.action = url;
                 const i = document.createElement('input'); i.name = 'csrfmiddlewaretoken'; i.value = token;
                 f.appendChild(i); document.body.appendChild(f); f.submit(); }""",
            [f"/promotions/{mine.pk}/approve", token],
        )
    page.wait_for_load_state()
    assert "someone else must review it" in page.content()
    assert PromotionRequest.objects.get(pk=mine.pk).reviews.count() == 0
    shots(page, "requester-post-refused")


def test_a_script_in_a_model_card_does_not_run(open_page, shots, demo):
    AssetVersion.objects.filter(asset=demo["fraud"], number=3).update(
        model_card="# Card\n\n<script>window.__pwned = 1</script>\n\n"
        '<img src=x onerror="window.__pwned = 2">\n\n[click](javascript:window.__pwned=3)'
    )
    page = open_page("reviewer1")
    for url in ["/registry/model/fraud-detector/versions/3/", f"/promotions/{demo['promotion'].pk}/"]:
        page.goto(url)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("() => window.__pwned") is None
        if page.get_by_text("click").count():
            page.get_by_text("click").first.click()
        assert page.evaluate("() => window.__pwned") is None
    shots(page, "model-card-sanitised")


def test_an_auditor_filters_the_log_and_the_bundle_verifies(open_page, shots, demo, tmp_path):
    page = open_page("auditor")
    page.goto("/audit/")
    page.select_option("#f-action", "promotion.requested")
    page.locator("#audit-filters button[type=submit]").click()
    page.wait_for_load_state()
    events = page.locator("#audit-events").inner_text()
    assert "promotion.requested" in events and "version.created" not in events
    shots(page, "auditor-filtered")
    page.goto("/audit/")
    with page.expect_download() as download_info:
        page.click("#export-bundle")
    path = tmp_path / "bundle.zip"
    download_info.value.save_as(path)
    result = subprocess.run(
        [sys.executable, str(VERIFIER), str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "verified"
    page.goto("/audit/integrity/")
    shots(page, "auditor-integrity")
