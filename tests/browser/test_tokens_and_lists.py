"""In a real browser, at a desk's width and a phone's: a person makes a token, copies it with the button (its
script runs under the CSP nonce), reloading does not show it again, and revoking asks first; the promotions
and policies pages render without a CSP violation."""

import re

import pytest

from accounts.models import ApiToken
from tests.factories import AssetFactory, PolicyFactory, PromotionFactory, UserFactory, VersionFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + (event.blockedURI || "inline"));
});
"""


@pytest.mark.parametrize("width", [1440, 390])
def test_a_token_is_copied_shown_once_and_revoked_after_confirming(browser, live_server, shots, width):
    UserFactory(username="pat", password="pat-password")
    asset = AssetFactory(name="fraud")
    PromotionFactory(version=VersionFactory(asset=asset))
    PolicyFactory(asset=asset)
    context = browser.new_context(base_url=live_server.url, viewport={"width": width, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", "pat")
    page.fill("#id_password", "pat-password")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")

    page.goto("/access/tokens/mine")
    page.fill("#mine_name", "laptop")
    page.check("#mine_scopes_0")
    page.click("#my-token-form button[type=submit]")
    page.wait_for_url(re.compile(r"/access/tokens/created$"))
    token = page.input_value("#new-token")
    assert token.startswith("mgr_")
    copy = page.locator("#copy-token")
    assert copy.is_visible()  # shown by the nonce'd script: it ran
    copy.click()
    page.wait_for_function("document.getElementById('copy-status').textContent === 'Copied.'")
    shots(page, f"token-created-{width}")
    assert page.evaluate("() => navigator.clipboard.readText()") == token

    page.reload()
    page.wait_for_url(re.compile(r"/access/tokens/mine$"))
    assert token not in page.content() and "shown only once" in page.content()

    page.click("a:has-text('Revoke…')")
    page.wait_for_url(re.compile(r"/access/tokens/\d+/revoke$"))
    shots(page, f"token-revoke-confirm-{width}")
    assert not ApiToken.objects.get().is_revoked
    page.click("#revoke-form button[type=submit]")
    page.wait_for_url(re.compile(r"/access/tokens/mine$"))
    assert ApiToken.objects.get().is_revoked

    for url in ("/promotions/", "/policies/"):
        page.goto(url)
        page.wait_for_load_state("networkidle")
        shots(page, f"{url.strip('/')}-{width}")
        # Nothing wider than the screen but the tables, which scroll inside their own box.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert page.evaluate("window.__violations") == []
    context.close()
