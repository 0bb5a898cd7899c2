"""Failed sign-in counting in the cache: per username and per client address, over a fixed window."""

from django.conf import settings
from django.core.cache import cache


def _keys(username: str, ip: str) -> list[str]:
    return [f"login-fail:user:{username.lower()[:150]}", f"login-fail:ip:{ip}"]


def is_locked(username: str, ip: str) -> bool:
    counts = cache.get_many(_keys(username, ip))
    return any(count >= settings.LOGIN_FAILURE_LIMIT for count in counts.values())


def note_failure(username: str, ip: str) -> None:
    for key in _keys(username, ip):
        if cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)


def clear(username: str) -> None:
    cache.delete(f"login-fail:user:{username.lower()[:150]}")
