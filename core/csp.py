"""django-csp's middleware with the policy built once: most answers (every API answer) use no nonce and no
per-view policy, and for them the header depends on the settings alone."""

from __future__ import annotations

import http.client

from csp import middleware as csp_middleware
from csp.constants import HEADER, HEADER_REPORT_ONLY
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

# What a view or a template can set to make one answer's policy its own (django-csp's decorators and
# `request.csp_nonce`): an answer with any of them takes the library's own path.
_PER_RESPONSE = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
)
_SETTINGS = {"CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY"}
_built: dict[bool, tuple[str, tuple[str, ...]]] = {}  # report_only -> (policy, excluded path prefixes)


@receiver(setting_changed)
def _forget(*, setting, **kwargs) -> None:
    if setting in _SETTINGS:
        _built.clear()


def _policy(report_only: bool) -> tuple[str, tuple[str, ...]]:
    if report_only not in _built:
        policy = csp_middleware.build_policy(report_only=report_only)  # no config, update, replace, nonce
        name = "CONTENT_SECURITY_POLICY_REPORT_ONLY" if report_only else "CONTENT_SECURITY_POLICY"
        prefixes = (getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ()
        _built[report_only] = (policy, tuple(prefixes))
    return _built[report_only]


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """Sets the same headers as django-csp's CSPMiddleware (tests/test_csp.py compares them), building the
    policy of an answer without a nonce or a per-view policy once instead of on every answer."""

    def process_response(self, request, response):
        if getattr(request, "_csp_nonce", None) is not None or any(
            getattr(response, name, None) is not None for name in _PER_RESPONSE
        ):
            return super().process_response(request, response)
        if settings.DEBUG and response.status_code in (
            http.client.INTERNAL_SERVER_ERROR,
            http.client.NOT_FOUND,
        ):
            return response
        for report_only, header, exempt in (
            (False, HEADER, "_csp_exempt"),
            (True, HEADER_REPORT_ONLY, "_csp_exempt_ro"),
        ):
            policy, prefixes = _policy(report_only)
            if (
                policy
                and header not in response
                and getattr(response, exempt, False) is False
                and not request.path_info.startswith(prefixes)
            ):
                response[header] = policy
        # As the library does: once the header is written, the nonce can no longer be added to it.
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)
        return response
