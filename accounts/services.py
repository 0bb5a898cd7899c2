"""Changes to accounts: people, passwords, service accounts, tokens, team memberships, global roles and
account flags, sign-ins. Each one is audited. Grants of roles on assets are registry's (registry.services)."""

from __future__ import annotations

import datetime as dt
import secrets
import string
from types import SimpleNamespace

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiToken, GlobalRole, Scope, User
from accounts.permissions import ADMINS, is_admin, require_admin
from accounts.ratelimit import address_bucket
from accounts.selectors import account_roles
from accounts.usernames import accounts_named, sign_in_name
from audit.models import Action
from audit.services import TargetRef, audit_record
from core.exceptions import Conflict, FieldError, Forbidden, InvalidInput
from core.source import Source
from core.validators import name_validator

TOKEN_ALPHABET = string.ascii_letters + string.digits
LOOKUP_ALPHABET = string.ascii_lowercase + string.digits
DEFAULT_TOKEN_DAYS = 90
MAX_TOKEN_DAYS = 365


@transaction.atomic(durable=True)
def service_account_create(*, actor, source: Source, name: str, team: Group | None = None) -> User:
    """Create an account for CI: it cannot sign in with a password, and can never review."""
    require_admin(actor)
    try:
        name_validator(name)
    except Exception:
        raise InvalidInput.field("name", name_validator.message) from None
    if User.objects.filter(username=name).exists():
        raise Conflict(f"An account named {name!r} already exists.", type="duplicate-name")
    account = User(username=name, is_service_account=True)
    account.set_unusable_password()
    account.save()
    if team is not None:
        account.groups.add(team)
    audit_record(
        actor=actor,
        action=Action.ACCOUNT_CREATED,
        target=account,
        source=source,
        changes={"after": {"service_account": True, "team": team.name if team else None}},
    )
    return account


def _new_token() -> tuple[str, str]:
    lookup = "".join(secrets.choice(LOOKUP_ALPHABET) for _ in range(12))
    secret = "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(40))
    return lookup, f"{ApiToken.PREFIX}_{lookup}_{secret}"


def _require_own_session_for_review(*, actor, source: Source, account: User) -> None:
    """Separation of duties: a reviewer's credential is made by that person alone, signed in, so that
    nobody (an admin, a command, or a token that leaked) can approve in someone else's name."""
    if actor is None or actor.pk != account.pk:
        raise Forbidden(
            "A token with the 'review' scope can only be created by its own person, for themselves.",
            type="review-token-forbidden",
        )
    if not source.is_session:
        raise Forbidden(
            "A token with the 'review' scope can only be created from a signed-in browser session, "
            "not with a token.",
            type="review-token-forbidden",
        )


def _require_within_calling_token(*, source: Source, scopes: list[str], expires_at: dt.datetime) -> None:
    """A token creates tokens only within itself: no scope it lacks, no expiry after its own."""
    if source.token_id is None:
        return
    # Locked: a revocation of the calling token waits for this creation, or this creation sees it.
    creator = ApiToken.objects.select_for_update().filter(pk=source.token_id).first()
    if creator is None or creator.is_revoked or creator.is_expired:
        raise Forbidden(
            "The token this request came with is no longer valid.", type="token-exceeds-credential"
        )
    missing = sorted(set(scopes) - set(creator.scopes))
    if missing:
        message = f"may only name scopes of the token making the request; it lacks {', '.join(missing)}"
        raise Forbidden(
            f"scopes: {message}", type="token-exceeds-credential", errors=[FieldError("scopes", message)]
        )
    if expires_at > creator.expires_at:
        days = max(0, (creator.expires_at - timezone.now()).days)
        message = (
            f"may not outlast the token making the request, which expires at "
            f"{creator.expires_at.isoformat()} (at most {days} days from now)"
        )
        raise Forbidden(
            f"expires_in_days: {message}",
            type="token-exceeds-credential",
            errors=[FieldError("expires_in_days", message)],
        )


@transaction.atomic(durable=True)
def token_create(
    *,
    actor,
    source: Source,
    account: User,
    name: str,
    scopes: list[str],
    expires_in_days: int = DEFAULT_TOKEN_DAYS,
) -> tuple[ApiToken, str]:
    """Create a token for account; returns the record and the token, which is never shown again."""
    if actor is not None and actor.pk != account.pk:
        require_admin(actor)
    if (
        actor is not None
        and actor.pk == account.pk
        and Scope.MANAGE in scopes
        and not actor.is_registry_admin
    ):
        raise Forbidden(
            "Only a registry admin may hold a token with the 'manage' scope.", type="permission-denied"
        )
    if account.is_service_account and Scope.REVIEW in scopes:
        raise InvalidInput.field("scopes", "a service account can never review, so no review scope")
    if Scope.REVIEW in scopes:
        _require_own_session_for_review(actor=actor, source=source, account=account)
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown or not scopes:
        raise InvalidInput.field("scopes", f"must be a non-empty list of {', '.join(Scope.values)}")
    if not 1 <= expires_in_days <= MAX_TOKEN_DAYS:
        raise InvalidInput.field("expires_in_days", f"must be between 1 and {MAX_TOKEN_DAYS}")
    if not name.strip():
        raise InvalidInput.field("name", "is required")
    expires_at = timezone.now() + dt.timedelta(days=expires_in_days)
    _require_within_calling_token(source=source, scopes=scopes, expires_at=expires_at)
    lookup, token = _new_token()
    record = ApiToken.objects.create(
        account=account,
        name=name.strip(),
        lookup=lookup,
        hashed=ApiToken.hash(token),
        last4=token[-4:],
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
        created_by=actor,
    )
    audit_record(
        actor=actor,
        action=Action.TOKEN_CREATED,
        target=record,
        source=source,
        changes={
            "after": {
                "account": account.username,
                "name": record.name,
                "scopes": record.scopes,
                "expires_at": record.expires_at,
                "lookup": lookup,
            }
        },
    )
    return record, token


@transaction.atomic(durable=True)
def token_revoke(*, actor, source: Source, token: ApiToken) -> ApiToken:
    """Revoke a token at once; its next use answers 401 token-revoked."""
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if actor is not None and actor.pk != token.account_id:
        require_admin(actor)
    if token.is_revoked:
        raise Conflict("The token is already revoked.", type="token-revoked")
    token.revoked_at, token.revoked_by = timezone.now(), actor
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit_record(
        actor=actor,
        action=Action.TOKEN_REVOKED,
        target=token,
        source=source,
        changes={"account": token.account.username, "lookup": token.lookup},
    )
    return token


@transaction.atomic(durable=True)
def login_record(*, user: User, source: Source) -> None:
    """Record a successful browser sign-in."""
    audit_record(actor=user, action=Action.LOGIN_SUCCEEDED, target=user, source=source)


@transaction.atomic(durable=True)
def login_failed_record(
    *, username: str, source: Source, reason: str, locks: dict[str, int] | None = None
) -> None:
    """Record a refused sign-in (wrong password, unknown user, service account, incomplete form), and the
    locks it engaged: `locks` maps "username" or "address" to the failures counted when the lock engaged.

    Attempts refused while locked are not recorded one by one: the `login.locked` event stands for them, so
    an anonymous caller cannot grow the log faster than the limit allows.
    """
    name = sign_in_name(username)[:150]
    changes = {"username": name, "reason": reason}
    if username[:150] != name:
        changes["typed"] = username[:150]
    account = TargetRef("accounts.user", "", name)
    audit_record(actor=None, action=Action.LOGIN_FAILED, target=account, source=source, changes=changes)
    address = address_bucket(source.ip)[:64]
    for scope, failures in sorted((locks or {}).items()):
        locked = {"scope": scope, "failures": failures, "seconds": settings.LOGIN_FAILURE_WINDOW}
        if scope == "username":
            locked["username"], target = name, account
        else:
            locked["address"], target = address, TargetRef("address", address, address)
        audit_record(actor=None, action=Action.LOGIN_LOCKED, target=target, source=source, changes=locked)


@transaction.atomic(durable=True)
def logout_record(*, user: User, source: Source) -> None:
    """Record a sign-out."""
    audit_record(actor=user, action=Action.LOGOUT, target=user, source=source)


# Who may act: team memberships, global roles, account flags ---------------------------------------------
#
# Team membership decides who is an eligible reviewer (review is granted to teams), and the global role and
# flags decide who administers everything: each change is one service, admin-only, with one audit event that
# carries the state before and after. Adding a member twice or removing a non-member is refused (409), like
# a grant; a user update that changes nothing answers with the account as it is and records nothing.

USER_FIELDS = ("global_role", "is_active", "is_superuser", "is_staff", "can_create_assets")
GLOBAL_ROLES = {"admin": GlobalRole.ADMIN, "auditor": GlobalRole.AUDITOR, "none": GlobalRole.NONE}


def _teams_of(user: User) -> list[str]:
    return sorted(user.groups.values_list("name", flat=True))


def _add_asset_permission() -> Permission:
    return Permission.objects.get(content_type__app_label="registry", codename="add_asset")


def _membership_change(
    *, actor, source: Source, team: Group, user: User, add: bool, reason: str = ""
) -> None:
    require_admin(actor)
    user = User.objects.select_for_update().get(pk=user.pk)  # one change to an account at a time
    before = _teams_of(user)
    if add and team.name in before:
        raise Conflict(f"{user} is already a member of team {team.name}.", type="already-a-member")
    if not add and team.name not in before:
        raise Conflict(f"{user} is not a member of team {team.name}.", type="not-a-member")
    (user.groups.add if add else user.groups.remove)(team)
    audit_record(
        actor=actor,
        action=Action.TEAM_MEMBER_ADDED if add else Action.TEAM_MEMBER_REMOVED,
        target=team,
        source=source,
        changes={
            "team": team.name,
            "user": user.username,
            "service_account": user.is_service_account,
            "before": {"teams": before},
            "after": {"teams": _teams_of(user)},
            **({"reason": reason} if reason else {}),
        },
    )


@transaction.atomic(durable=True)
def team_member_add(*, actor, source: Source, team: Group, user: User) -> None:
    """Add user to team: the team's roles apply to them at once (a review grant makes them a reviewer)."""
    _membership_change(actor=actor, source=source, team=team, user=user, add=True)


@transaction.atomic(durable=True)
def team_member_remove(*, actor, source: Source, team: Group, user: User) -> None:
    """Take user out of team: its roles stop applying at once, earlier approvals through it included."""
    _membership_change(actor=actor, source=source, team=team, user=user, add=False)


def _clean_user_fields(fields: dict) -> dict:
    unknown = sorted(set(fields) - set(USER_FIELDS))
    if unknown:
        raise InvalidInput.field(unknown[0], f"cannot be changed; editable fields: {', '.join(USER_FIELDS)}")
    if "global_role" in fields and fields["global_role"] not in GLOBAL_ROLES:
        raise InvalidInput.field("global_role", f"must be one of {', '.join(GLOBAL_ROLES)}")
    for name in USER_FIELDS[1:]:
        if name in fields and not isinstance(fields[name], bool):
            raise InvalidInput.field(name, "must be true or false")
    return fields


def _check_user_change(*, actor, user: User, after: dict, changed: list[str]) -> None:
    """The rules a role change must keep; the first field that breaks one is named."""

    def blame(*names: str) -> str:
        return next((name for name in names if name in changed), names[0])

    if "is_superuser" in changed and actor is not None and not actor.is_superuser:
        raise Forbidden("Only a superuser may give or take superuser status.", type="permission-denied")
    if user.is_service_account and (
        after["global_role"] != "none" or after["is_superuser"] or after["is_staff"]
    ):
        # A CI credential acts on assets through grants only; it never administers the registry.
        raise InvalidInput.field(
            blame("global_role", "is_superuser", "is_staff"),
            "a service account holds no global role, superuser or staff status",
            type="service-account-cannot-hold-global-role",
        )
    if after["global_role"] == "auditor":
        # An auditor checks everyone else's work, so changes nothing: no admin rights, no asset creation.
        if after["is_superuser"] or after["can_create_assets"]:
            raise InvalidInput.field(
                blame("global_role", "is_superuser", "can_create_assets"),
                "an auditor can be neither a superuser nor create assets",
                type="auditor-cannot-write",
            )
        if "global_role" in changed and _holds_any_grant(user):
            raise InvalidInput.field(
                "global_role",
                "an auditor holds no role on assets: revoke this account's grants first",
                type="auditor-cannot-hold-role",
            )


def _holds_any_grant(user: User) -> bool:
    """Whether user holds a role on an asset directly. The grant table is registry's, read here through the
    relation guardian gives the user; registry.services.grant_add writes its rows, role codenames only."""
    return user.assetuserobjectpermission_set.exists()


def _is_admin_with(fields: dict) -> bool:
    """Whether an account with these fields is a registry admin, by the one rule (accounts.permissions)."""
    return is_admin(
        SimpleNamespace(
            is_active=fields["is_active"],
            is_superuser=fields["is_superuser"],
            global_role=GLOBAL_ROLES[fields["global_role"]],
        )
    )


def _check_an_admin_remains(user: User, before: dict, after: dict) -> None:
    """Refuse to remove the last active admin: nobody could change roles afterwards, except from a shell."""
    if (
        _is_admin_with(before)
        and not _is_admin_with(after)
        and not User.objects.filter(ADMINS).exclude(pk=user.pk).exists()
    ):
        raise Conflict(
            "This is the last active registry admin; make someone else an admin first.", type="last-admin"
        )


@transaction.atomic(durable=True)
def user_update(*, actor, source: Source, user: User, **fields) -> User:
    """Change an account's global role, active flag, superuser or staff status, or asset creation right."""
    fields = _clean_user_fields(fields)
    require_admin(actor)
    if {"global_role", "is_active", "is_superuser"} & set(fields):
        # A change that may demote an admin locks every admin row first, in one order, then the account: two
        # admins demoting each other at once are serialised, and the second sees that the first is gone.
        list(User.objects.select_for_update().filter(ADMINS).order_by("pk").values_list("pk"))
    user = User.objects.select_for_update().get(pk=user.pk)
    before = account_roles(user)
    after = {**before, **fields}
    changed = [name for name in USER_FIELDS if before[name] != after[name]]
    if not changed:
        return user
    _check_user_change(actor=actor, user=user, after=after, changed=changed)
    _check_an_admin_remains(user, before, after)
    user.global_role = GLOBAL_ROLES[after["global_role"]]
    user.is_active, user.is_superuser, user.is_staff = (
        after["is_active"],
        after["is_superuser"],
        after["is_staff"],
    )
    user.save(update_fields=["global_role", "is_active", "is_superuser", "is_staff"])
    if "can_create_assets" in changed:
        change = user.user_permissions.add if after["can_create_assets"] else user.user_permissions.remove
        change(_add_asset_permission())
    audit_record(
        actor=actor,
        action=Action.USER_UPDATED,
        target=user,
        source=source,
        changes={
            "user": user.username,
            "service_account": user.is_service_account,
            "before": {name: before[name] for name in changed},
            "after": {name: after[name] for name in changed},
        },
    )
    return user


# People and passwords --------------------------------------------------------------------------------------
#
# A password is a credential of one person: whoever could set it could sign in, and approve, in that person's
# name. So a password is set only by its own person (signed in, knowing the old one) or on the server's
# command line (`manage.py changepassword`, the system actor), never by an admin in the app; each change is an
# audit event that names who set it and never carries the password or its hash.


def _check_password(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput.field("password", " ".join(exc.messages), type="weak-password") from None


@transaction.atomic(durable=True)
def person_create(
    *,
    actor,
    source: Source,
    username: str,
    email: str = "",
    password: str | None = None,
    is_superuser: bool = False,
) -> User:
    """Create an account for a person; without a password it cannot sign in until one is set on the server."""
    require_admin(actor)
    if is_superuser and actor is not None and not actor.is_superuser:
        raise Forbidden("Only a superuser may give or take superuser status.", type="permission-denied")
    try:
        if not 1 <= len(username) <= 150:
            raise ValidationError("length")
        User.username_validator(username)
    except ValidationError:
        raise InvalidInput.field(
            "username", "must be 1 to 150 letters, digits and @/./+/-/_ characters"
        ) from None
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise InvalidInput.field("email", "must be an e-mail address") from None
    if accounts_named(username):
        raise Conflict(f"An account named {username!r} already exists.", type="duplicate-name")
    account = User(username=username, email=User.objects.normalize_email(email))
    account.is_superuser = account.is_staff = is_superuser
    if password is None:
        account.set_unusable_password()
    else:
        _check_password(password, account)
        account.set_password(password)
    account.save()
    audit_record(
        actor=actor,
        action=Action.ACCOUNT_CREATED,
        target=account,
        source=source,
        changes={
            "after": {
                "service_account": False,
                "email": account.email,
                "is_superuser": is_superuser,
                "password": "set" if password is not None else "none",
            }
        },
    )
    return account


@transaction.atomic(durable=True)
def user_set_password(*, actor, source: Source, user: User, password: str) -> User:
    """Set user's password: only its own person, or the system actor (a command run on the server).

    Every other session of the account ends (Django's session check compares the password hash); tokens stay.
    """
    if actor is not None and actor.pk != user.pk:
        raise Forbidden(
            "Only the person themselves sets their password; an administrator runs "
            "`manage.py changepassword` on the server.",
            type="password-of-another",
        )
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_service_account:
        raise InvalidInput.field(
            "password", "a service account signs in with tokens only", type="service-account-password"
        )
    _check_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_record(
        actor=actor,
        action=Action.PASSWORD_CHANGED,
        target=user,
        source=source,
        changes={"user": user.username, "set_by": "self" if actor is not None else "server"},
    )
    return user
