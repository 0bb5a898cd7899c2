"""Failed sign-in counting in the cache: per sign-in name and per client address, over a fixed window; and
refused OIDC token exchanges, per client address (exchange_retry_after, exchange_note_refusal).

Names are counted by their sign-in name (accounts.usernames), the form the password backend looks accounts up
by, so `Dave`, `dave ` and `dave` in full-width letters share one count and one lock. Addresses are counted
per IPv4 address and per IPv6 /64 (one subscriber's usual allocation), so hopping inside one network does not
reset the count.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time

from django.conf import settings
from django.core.cache import cache

USERNAME, ADDRESS = "username", "address"


def address_bucket(ip: str) -> str:
    """What the per-address count is kept for: the IPv4 address, or the IPv6 /64 network."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _keys(name: str, ip: str) -> dict[str, str]:
    """Cache keys by scope; the name is hashed (cache backends limit key length and characters)."""
    keys = {ADDRESS: f"login-fail:ip:{address_bucket(ip)}"}
    if name:
        digest = hashlib.sha256(name.encode("utf-8", "backslashreplace")).hexdigest()
        keys[USERNAME] = f"login-fail:user:{digest}"
    return keys


def is_locked(name: str, ip: str) -> bool:
    """Whether the sign-in name (from usernames.sign_in_name) or the address has used up its failures."""
    counts = cache.get_many(list(_keys(name, ip).values()))
    return any(count >= settings.LOGIN_FAILURE_LIMIT for count in counts.values())


def note_failure(name: str, ip: str) -> dict[str, int]:
    """Count one failure; returns the scopes whose lock this failure engaged, with their count.

    A count reaches the limit exactly once per window (add and incr are atomic in the cache), so a lock is
    reported once, however many requests race.
    """
    engaged = {}
    for scope, key in _keys(name, ip).items():
        if cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW):
            count = 1
        else:
            try:
                count = cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)
                count = 1
        if count == settings.LOGIN_FAILURE_LIMIT:
            engaged[scope] = count
    return engaged


def clear(name: str) -> None:
    """Forget the failures of a sign-in name (after its account signed in)."""
    cache.delete_many([key for scope, key in _keys(name, "").items() if scope == USERNAME])


# Refused OIDC token exchanges ------------------------------------------------------------------------------
#
# Counted per address bucket in windows aligned on multiples of OIDC_EXCHANGE_FAILURE_WINDOW seconds, so that
# the seconds left until the lock ends (the 429's Retry-After) follow from the clock alone, for every worker.
# A successful exchange neither counts nor clears the count: a job that succeeds does not earn its address
# more tries at refused tokens.


def _exchange_window(now: float) -> tuple[int, int]:
    """The current window's number and the whole seconds left in it (at least 1)."""
    window = settings.OIDC_EXCHANGE_FAILURE_WINDOW
    number = int(now // window)
    return number, max(1, math.ceil((number + 1) * window - now))


def _exchange_key(ip: str, number: int) -> str:
    return f"oidc-exchange-fail:{number}:{address_bucket(ip)}"


def exchange_retry_after(ip: str) -> int:
    """Seconds until the address may exchange again: 0 unless its refusals reached the limit this window."""
    number, left = _exchange_window(time.time())
    count = cache.get(_exchange_key(ip, number), 0)
    return left if count >= settings.OIDC_EXCHANGE_FAILURE_LIMIT else 0


def exchange_note_refusal(ip: str) -> int | None:
    """Count one refused exchange of the address; the count when this refusal engaged the lock, else None
    (reported once per window however many requests race: add and incr are atomic in the cache)."""
    number, left = _exchange_window(time.time())
    key = _exchange_key(ip, number)
    if cache.add(key, 1, timeout=left + 1):
        count = 1
    else:
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=left + 1)
            count = 1
    return count if count == settings.OIDC_EXCHANGE_FAILURE_LIMIT else None
