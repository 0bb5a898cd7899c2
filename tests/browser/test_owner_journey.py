"""The owner's journey in a real browser, at a desktop width (1440 px) and a phone width (390 px).

model/churn has v1, v2 and v3; v2 serves production, which needs one approval. Its owner opens the asset page
(stage badges, the metric chart), puts v3 in staging from the version page, requests a promotion of v3 to
production from the version row, then asks to roll back production to v1: the form refuses until the rollback
box is ticked, and keeps what was typed. The asset page then lists the open rollback and the superseded
request.
"""

import pytest
from django.contrib.auth.models import Group
from django.db import transaction

from approvals.models import PromotionRequest, Status
from core.source import Source
from registry.models import AssetKind, Stage, StagePointer
from registry.services import stage_move
from tests.factories import AssetFactory, PolicyFactory, UserFactory, VersionFactory, grant

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
WIDTHS = {"desktop": 1440, "phone": 390}


@pytest.fixture
def churn(db):
    owner = UserFactory(username="olivia", password="olivia-demo-password")
    asset = AssetFactory(kind=AssetKind.MODEL, name="churn", team=Group.objects.create(name="growth"))
    grant(owner, asset, "manage")
    versions = [
        VersionFactory(asset=asset, metrics={"auc": auc, "latency_ms": latency}, created_by=owner)
        for auc, latency in [(0.81, 30), (0.84, 35), (0.88, 33)]
    ]
    production = Stage.objects.get(name="production")
    PolicyFactory(asset=asset, stage=production)
    with transaction.atomic():
        stage_move(
            actor=owner,
            source=Source.cli(),
            asset=asset,
            stage=production,
            version=versions[1],
            reason="live",
        )
    return asset


def submit(page, form: str) -> None:
    with page.expect_navigation():
        page.locator(f"{form} button[type=submit]").click()
    page.wait_for_load_state()


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_owner_stages_requests_and_rolls_back(open_page, shots, churn, width):
    page = open_page("olivia")
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/registry/model/churn/")
    assert page.locator("#version-2 .badge.stage").inner_text() == "production"
    chart = page.locator("svg.metric-svg")
    assert chart.get_attribute("data-metric") == "auc"
    assert chart.locator("a.point").count() == 3
    # No sideways scrolling of the page itself at either width (wide tables scroll in their own box).
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    shots(page, "asset-page")

    # Put v3 in staging from its version page.
    page.locator("#version-3 th a").click()
    page.wait_for_load_state()
    page.select_option("#stage_stage", "staging")
    page.fill("#stage_reason", "smoke test")
    submit(page, "#stage-form")
    assert "is now in staging" in page.locator(".messages").inner_text()
    assert StagePointer.objects.get(asset=churn, stage__name="staging").version.number == 3
    shots(page, "v3-in-staging")

    # Request a promotion of v3 to production from the asset page's version row.
    page.goto("/registry/model/churn/")
    assert page.locator("#version-3 .badge.stage").inner_text() == "staging"
    page.locator("#version-3").get_by_role("link", name="Request a promotion: v3").click()
    page.wait_for_load_state()
    assert page.locator("#promote_version").input_value() == "3"
    page.select_option("#promote_stage", "production")
    page.fill("#promote_justification", "v3 lifts AUC to 0.88")
    shots(page, "request-form")
    submit(page, "#promotion-form")
    first = PromotionRequest.objects.get(asset=churn, version__number=3)
    assert page.url.endswith(f"/promotions/{first.pk}/")
    assert f"Promotion #{first.pk} requested" in page.locator(".messages").inner_text()
    shots(page, "promotion-requested")

    # Roll production back to v1: refused until the rollback box is ticked, with what was typed kept.
    page.goto("/promotions/new/model/churn/?version=1")
    page.select_option("#promote_stage", "production")
    page.fill("#promote_justification", "v2 misbehaves; back to v1")
    submit(page, "#promotion-form")
    assert page.locator("#promote_rollback_error").is_visible()
    assert page.locator("#promote_justification").input_value() == "v2 misbehaves; back to v1"
    shots(page, "rollback-refused-inline")
    page.check("#promote_rollback")
    submit(page, "#promotion-form")
    rollback = PromotionRequest.objects.get(asset=churn, version__number=1)
    assert rollback.rollback and rollback.base_version.number == 2
    assert f"Rollback #{rollback.pk} requested" in page.locator(".messages").inner_text()
    shots(page, "rollback-requested")

    # The asset page lists the open rollback, and the request it superseded among the decided ones.
    page.goto("/registry/model/churn/")
    assert f"#{rollback.pk}" in page.locator("#open-promotions").inner_text()
    assert f"#{first.pk}" in page.locator("#decided-promotions").inner_text()
    assert PromotionRequest.objects.get(pk=first.pk).status == Status.SUPERSEDED
    page.locator("#promotions-heading").scroll_into_view_if_needed()
    shots(page, "asset-promotions")
