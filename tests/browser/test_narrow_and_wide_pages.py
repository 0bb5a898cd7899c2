"""The pages on a phone (390 px) and the audit log on a wide screen (1440 px), in a real browser.

On the demo data: at 390 px no page is wider than the screen, and any table wider than its box sits in a
labelled, focusable region that scrolls sideways and shows a hint saying so (or stacks its rows into cards).
At 1440 px the audit log's Changes column wraps: no cell is wider than its column. Screenshots of each page
go to test-artifacts/browser/.
"""

import contextlib

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from accounts.models import User
from approvals.models import PromotionRequest
from core.source import Source
from registry.models import Asset
from registry.services import asset_update

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1440, "height": 900}
LONG_WORD = "calibration-" * 12 + "without_a_space_" * 6


@pytest.fixture
def demo(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("load_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    fraud = Asset.objects.get(kind="model", name="fraud-detector")
    asset_update(  # an event whose changes are long, with a word longer than any column
        actor=User.objects.get(username="admin"),
        source=Source.cli(),
        asset=fraud,
        description=f"Scores card transactions; {LONG_WORD} " + "retrained weekly on the last 90 days. " * 8,
    )
    return {
        "promotion": PromotionRequest.objects.order_by("-pk").first(),
        "team": Group.objects.order_by("name").first(),
    }


# What a page must satisfy on a phone, measured in the page. Returns a list of problems (empty: fine).
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const viewport = window.innerWidth;
  const root = document.documentElement;
  if (root.scrollWidth > viewport) problems.push(`page is ${root.scrollWidth}px wide`);
  const labelOf = (region) => {
    const ids = (region.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean);
    const named = ids.map((id) => document.getElementById(id)?.textContent.trim() || "").join(" ");
    return (region.getAttribute("aria-label") || named).trim();
  };
  for (const table of document.querySelectorAll("main table")) {
    if (table.closest("details:not([open])")) continue;
    const box = table.parentElement.getBoundingClientRect();
    const wide = table.scrollWidth > Math.ceil(box.width) + 1
      || table.getBoundingClientRect().right > viewport;
    const region = table.closest('[role="region"]');
    if (wide) {
      const name = table.id || table.querySelector("caption")?.textContent.trim() || "a table";
      if (!region) { problems.push(`${name} is wider than its box and not in a scroll region`); continue; }
      if (!labelOf(region)) problems.push(`the scroll region of ${name} has no label`);
      if (region.tabIndex !== 0) problems.push(`the scroll region of ${name} cannot be focused`);
      if (getComputedStyle(region).overflowX !== "auto") problems.push(`${name}'s region does not scroll`);
      const hint = getComputedStyle(region, "::before");
      const shown = hint.display !== "none" && parseFloat(hint.maxHeight || "1") !== 0
        && hint.content.includes("Scroll sideways");
      if (!shown) problems.push(`${name} scrolls sideways without saying so`);
    }
  }
  return problems;
}"""

STACKED_CELLS_WITHOUT_LABEL = """() =>
  [...document.querySelectorAll("[data-stack] > table > tbody > tr > td:not(.empty)")]
  .filter((cell) => !getComputedStyle(cell, "::before").content.includes('"')).length"""


def settle(page) -> None:
    """Wait until the layout is measured and the scroll timelines (which show the hints) have ticked: two
    animation frames after the last change, or up to 3 s for the page's problems to clear."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # as conftest: only when a browser runs

    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_function(f"() => ({LAYOUT_PROBLEMS})().length === 0", timeout=3000)


def phone_pages(demo) -> list[tuple[str, str]]:
    promotion, team = demo["promotion"], demo["team"]
    return [
        ("inbox", "/"),
        ("asset-list", "/registry/"),
        ("asset-detail", "/registry/model/fraud-detector/"),
        ("version-detail", "/registry/model/fraud-detector/versions/3/"),
        ("promotion", f"/promotions/{promotion.pk}/"),
        ("audit-log", "/audit/"),
        ("audit-log-with-sign-ins", "/audit/?exclude="),
        ("audit-timeline", "/audit/assets/model/fraud-detector/"),
        ("audit-integrity", "/audit/integrity/"),
        ("access", "/access/"),
        ("access-my-tokens", "/access/tokens/mine"),
        ("access-people", "/access/people/"),
        ("access-teams", "/access/teams/"),
        ("access-team", f"/access/teams/{team.name}/"),
        ("access-grants", "/access/assets/model/fraud-detector/"),
        ("webhooks", "/webhooks/"),
        ("notification-settings", "/notifications/settings/"),
    ]


def test_every_page_fits_a_phone(open_page, shots, demo):
    page = open_page("admin")
    page.set_viewport_size(PHONE)
    for name, path in phone_pages(demo):
        response = page.goto(path)
        assert response.status == 200, path
        page.evaluate("document.querySelectorAll('main details').forEach((d) => { d.open = true; })")
        settle(page)
        assert page.evaluate(LAYOUT_PROBLEMS) == [], f"{name} ({path})"
        assert page.evaluate(STACKED_CELLS_WITHOUT_LABEL) == 0, f"{name}: a card's cell has no label"
        shots(page, f"390-{name}")


def test_on_a_phone_requests_are_cards_and_wide_tables_scroll_in_a_labelled_region(open_page, shots, demo):
    page = open_page("reviewer1")
    page.set_viewport_size(PHONE)
    page.goto("/")
    waiting = page.locator("#waiting table tbody tr").first
    assert waiting.is_visible()
    # every cell of a request is as wide as the card, none squeezed to a sliver, and named by its label
    widths = waiting.evaluate("(row) => [...row.children].map((cell) => cell.getBoundingClientRect().width)")
    assert min(widths) > 300
    assert "Gates" in waiting.locator("td[data-label=Gates]").evaluate(
        "(cell) => getComputedStyle(cell, '::before').content"
    )
    settle(page)
    assert page.evaluate(LAYOUT_PROBLEMS) == []
    shots(page, "390-inbox-reviewer1")

    page = open_page("admin")
    page.set_viewport_size(PHONE)
    page.goto("/access/")
    region = page.locator('[role="region"]:has(table.tokens)').first
    assert region.evaluate("(el) => el.scrollWidth > el.clientWidth")  # wider than the phone
    assert region.get_attribute("aria-label") == "Tokens of ci-bot"
    region.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("(el) => el.scrollLeft > 0", arg=region.element_handle(), timeout=5000)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shots(page, "390-access-scrolled")


def test_the_changes_column_wraps_on_a_wide_screen(open_page, shots, demo):
    page = open_page("auditor")
    page.set_viewport_size(WIDE)
    page.goto("/audit/")
    page.evaluate("document.querySelectorAll('#audit-events details').forEach((d) => { d.open = true; })")
    clipped = page.evaluate(
        """() => [...document.querySelectorAll('#audit-events td.changes-cell')].flatMap((cell) =>
             [cell, ...cell.querySelectorAll('summary, td, dd')]
               .filter((el) => el.scrollWidth > el.clientWidth + 1)
               .map((el) => `${el.tagName} ${el.scrollWidth}>${el.clientWidth}`))"""
    )
    assert clipped == []
    wrap = page.locator('[role="region"]:has(#audit-events)')
    assert wrap.evaluate("(el) => el.scrollWidth <= el.clientWidth")  # the whole table fits: no hidden column
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDE["width"]
    # the long change is there, wrapped over several lines rather than cut
    cell = page.locator("#audit-events td.changes-cell", has_text="calibration").first
    assert cell.evaluate("(el) => el.getBoundingClientRect().height") > 60
    shots(page, "1440-audit-changes")
