"""The reviewer's decision on one screen, at a desktop width (1440 px) and a phone width (390 px).

The demo's pending request (fraud-detector v3 → production, v2 serving production) shows metric deltas
(▲ and ▼) against what runs today, names the eligible reviewers and writes the policy out; when a new
evaluation makes a gate fail, the failure is shown beside the Approve button and in the inbox alike.
Screenshots go to test-artifacts/browser/<test name>/.
"""

import pytest

from accounts.models import User
from approvals.models import PromotionRequest
from core.source import Source
from registry.models import Asset
from registry.services import evaluation_add

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def pending(db, settings, tmp_path):
    from django.core.management import call_command

    settings.VAR_DIR = tmp_path
    call_command("load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    return PromotionRequest.objects.get(asset__name="fraud-detector", version__number=3, status="pending")


def _inbox_gates(page, pk: int) -> str:
    row = page.locator("#waiting tr", has=page.get_by_role("link", name=f"#{pk}", exact=True))
    return row.locator("td[data-label=Gates]").inner_text()


@pytest.mark.parametrize("width", [1440, 390])
def test_the_decision_on_one_screen(open_page, shots, pending, width):
    page = open_page("reviewer1")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/")
    assert "✓ 2 passing" in _inbox_gates(page, pending.pk)
    shots(page, "inbox-gates-pass")

    page.goto(f"/promotions/{pending.pk}/")
    assert page.locator("#baseline").inner_text() == "Against v2, in production today."
    deltas = page.locator("#metric-deltas tbody").inner_text()
    assert "▲" in deltas and "▼" in deltas and "better" in deltas and "worse" in deltas
    reviewers = page.locator("#eligible-reviewers").inner_text()
    assert "reviewer1 (you)" in reviewers and "reviewer2" in reviewers
    policy = page.locator("#policy-summary").inner_text()
    assert "2 approvals from team reviewers" in policy and "auc ≥ 0.92" in policy
    assert page.locator("#gate-warning").count() == 0
    assert page.locator("#approve-form button").inner_text() == "Approve"
    shots(page, "promotion-gates-pass")

    # A nightly evaluation comes in below the policy's threshold.
    evaluation_add(
        actor=User.objects.get(username="admin"),
        source=Source.cli(),
        version=pending.version,
        name="nightly",
        metrics={"auc": 0.87},
    )
    page.reload()
    warning = page.locator("#gate-warning")
    assert warning.is_visible()
    assert "Gate auc ≥ 0.92 fails: 0.87" in warning.inner_text()
    assert "cannot be applied until the gate passes" in warning.inner_text()
    button = page.locator("#approve-form button[type=submit]")
    assert button.inner_text() == "Approve anyway"
    # Beside the button: just above it, in the same column, and on the screen at this width.
    warning_box, button_box = warning.bounding_box(), button.bounding_box()
    assert 0 <= button_box["y"] - (warning_box["y"] + warning_box["height"]) < 40
    assert abs(warning_box["x"] - button_box["x"]) < 5
    assert warning_box["x"] + warning_box["width"] <= width
    assert "✗ Fail" in page.locator("#gate-checklist").inner_text()
    page.locator("#decision").scroll_into_view_if_needed()
    shots(page, "promotion-gate-fails")

    page.goto("/")
    cell = _inbox_gates(page, pending.pk)
    assert "✗ 1 failing" in cell and "1 passing" in cell and "auc ≥ 0.92 fails: 0.87" in cell
    shots(page, "inbox-gate-fails")


def test_after_my_approval_the_page_says_so(open_page, shots, pending):
    page = open_page("reviewer1")
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto(f"/promotions/{pending.pk}/")
    page.fill("#approve_comment", "AUC and recall up, precision a little down")
    page.locator("#approve-form button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator("#my-review").inner_text().startswith("You approved this request on ")
    assert page.locator("#review-refusal").count() == 0
    assert "reviewer1 (you) ✓ approved" in page.locator("#eligible-reviewers").inner_text()
    assert Asset.objects.get(name="fraud-detector").promotions.get(pk=pending.pk).status == "pending"
    shots(page, "after-my-approval")
