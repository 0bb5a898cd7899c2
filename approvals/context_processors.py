"""Template context for every page: the number of requests waiting for the signed-in person's review."""

from __future__ import annotations

from functools import cache

from approvals.selectors import promotion_inbox_count_for_user


def inbox_badge(request) -> dict:
    """`inbox_waiting`: a callable the header calls once (one query, only on pages that show the header;
    none when the view counted already and left the number in `request.inbox_waiting_count`)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def count() -> int:
        known = getattr(request, "inbox_waiting_count", None)
        return known if known is not None else promotion_inbox_count_for_user(user=user)

    return {"inbox_waiting": cache(count)}
