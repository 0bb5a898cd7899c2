"""The one form of a username that sign-in counts, locks and looks accounts up by.

`sign_in_name` is NFKC, case-folded and trimmed, so `Dave`, `dave ` and `dave` typed in full-width letters
are one name to the rate limit and to the password backend alike: a lock cannot be stepped around by spelling
the name another way, and a name finds the same account whichever way it is typed.
"""

from __future__ import annotations

import unicodedata

from django.db.models import Q

# Account names are at most this long (AbstractUser.username). A longer input can never sign in (the form
# refuses it before authenticating), so it is not normalised: normalising is slow on some platforms.
MAX_LENGTH = 150


def sign_in_name(raw: str) -> str:
    """NFKC of the case-folded NFKC form, trimmed; repeated until stable, so that it is idempotent."""
    name = str(raw).strip()
    if len(name) > MAX_LENGTH:
        return name
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).strip()
        if folded == name:
            break
        name = folded
    return name


def accounts_named(raw: str, *, people_only: bool = False, exclude_pk: int | None = None) -> list:
    """The accounts whose username has the same sign-in name as raw (one query).

    The database narrows by a case-insensitive match (of the sign-in name, and of the name as typed, for
    databases whose case-insensitive match knows only ASCII); Python then keeps the exact sign-in name.
    """
    from accounts.models import User

    stripped = str(raw).strip()
    if not stripped or len(stripped) > MAX_LENGTH:
        return []
    name, typed = sign_in_name(stripped), unicodedata.normalize("NFKC", stripped)
    candidates = User.objects.filter(Q(username__iexact=name) | Q(username__iexact=typed))
    if people_only:
        candidates = candidates.filter(is_service_account=False)
    if exclude_pk is not None:
        candidates = candidates.exclude(pk=exclude_pk)
    return [user for user in candidates[:20] if sign_in_name(user.username) == name]
