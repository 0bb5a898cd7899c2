"""Services of identity federation: trust policies (admins; each change audited), the exchange of a CI job's
OIDC ID token for a short-lived registry token (audited, with the issuer, subject and matched claims), and
single sign-on for people (accounts created on first sign-in, teams following the provider's groups).

The checks of a token are in accounts/oidc.py; the exchange fetches the issuer's keys before its transaction
begins, so no database transaction waits on the network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import oidc, ratelimit
from accounts.models import ApiToken, ExternalIdentity, IdTokenUse, TrustPolicy, User
from accounts.permissions import require_admin
from accounts.services import _membership_change, _new_token
from accounts.usernames import accounts_named
from audit.models import Action
from audit.services import TargetRef, audit_record
from core.exceptions import Conflict, DomainError, Forbidden, InvalidInput, TooManyRequests
from core.source import Source
from core.validators import name_validator

POLICY_FIELDS = (
    "name",
    "provider",
    "issuer",
    "audience",
    "conditions",
    "account",
    "scopes",
    "token_lifetime_seconds",
    "enabled",
)
NO_POLICY = "No trust policy accepts this ID token."
logger = logging.getLogger(__name__)


def _state(policy: TrustPolicy) -> dict:
    return {
        "name": policy.name,
        "provider": policy.provider,
        "issuer": policy.issuer,
        "audience": policy.audience,
        "conditions": policy.conditions,
        "account": policy.account.username,
        "scopes": policy.scopes,
        "token_lifetime_seconds": policy.token_lifetime_seconds,
        "enabled": policy.enabled,
    }


def _check(fields: dict, *, exclude_pk: int | None = None) -> dict:
    try:
        name_validator(fields.get("name") or "")
    except Exception:
        raise InvalidInput.field("name", name_validator.message) from None
    fields = oidc.clean_policy(fields)
    account = fields["account"]
    if not isinstance(account, User) or not account.is_service_account:
        # A CI job acts as a service account, never as a person: a person's review rights must stay theirs.
        raise InvalidInput.field("account", "must be a service account")
    if not isinstance(fields.get("enabled"), bool):
        raise InvalidInput.field("enabled", "must be true or false")
    if TrustPolicy.objects.filter(name=fields["name"]).exclude(pk=exclude_pk).exists():
        raise Conflict(f"A trust policy named {fields['name']!r} exists already.", type="duplicate-name")
    return fields


@transaction.atomic(durable=True)
def trust_policy_create(
    *,
    actor,
    source: Source,
    name: str,
    provider: str,
    audience: str,
    conditions: dict,
    account: User,
    scopes: list[str],
    issuer: str = "",
    token_lifetime_seconds: int = 900,
    enabled: bool = True,
) -> TrustPolicy:
    """Trust ID tokens of an issuer whose claims match, to act as account with scopes (admins only)."""
    require_admin(actor)
    fields = _check(
        {
            "name": name,
            "provider": provider,
            "issuer": issuer,
            "audience": audience,
            "conditions": dict(conditions),
            "account": account,
            "scopes": list(scopes),
            "token_lifetime_seconds": token_lifetime_seconds,
            "enabled": enabled,
        }
    )
    policy = TrustPolicy.objects.create(**fields, created_by=actor)
    audit_record(
        actor=actor,
        action=Action.TRUST_POLICY_CREATED,
        target=policy,
        source=source,
        changes={"after": _state(policy)},
    )
    return policy


@transaction.atomic(durable=True)
def trust_policy_update(*, actor, source: Source, policy: TrustPolicy, **fields) -> TrustPolicy:
    """Change a trust policy's fields (admins only); tokens minted before keep their scopes until expiry."""
    require_admin(actor)
    unknown = sorted(set(fields) - set(POLICY_FIELDS))
    if unknown:
        raise InvalidInput.field(unknown[0], f"cannot be changed; fields: {', '.join(POLICY_FIELDS)}")
    policy = TrustPolicy.objects.select_for_update().select_related("account").get(pk=policy.pk)
    before = _state(policy)
    current = {name: getattr(policy, name) for name in POLICY_FIELDS}
    after = _check({**current, **fields}, exclude_pk=policy.pk)
    changed = [name for name in POLICY_FIELDS if after[name] != current[name]]
    if not changed:
        return policy
    for name in changed:
        setattr(policy, name, after[name])
    policy.save(update_fields=[*changed, "updated_at"])
    state = _state(policy)
    audit_record(
        actor=actor,
        action=Action.TRUST_POLICY_UPDATED,
        target=policy,
        source=source,
        changes={
            "before": {name: before[name] for name in changed},
            "after": {name: state[name] for name in changed},
        },
    )
    return policy


@transaction.atomic(durable=True)
def trust_policy_delete(*, actor, source: Source, policy: TrustPolicy) -> None:
    """Remove a trust policy (admins only): no further exchange matches it; minted tokens run out within
    the hour, or are revoked like any token."""
    require_admin(actor)
    policy = TrustPolicy.objects.select_for_update().select_related("account").get(pk=policy.pk)
    before = _state(policy)
    audit_record(
        actor=actor,
        action=Action.TRUST_POLICY_DELETED,
        target=policy,
        source=source,
        changes={"before": before},
    )
    policy.delete()


def token_exchange(*, source: Source, id_token: str) -> tuple[ApiToken, str]:
    """A registry token for a CI job's verified OIDC ID token, scoped by the one trust policy it matches.

    Refusals: 401 id-token-invalid (what failed is named), 401 id-token-replayed, 403 no-trust-policy (none
    or several policies match: which ones is not said), 429 throttled (the client address was refused too
    often in the window: answered before anything is fetched or verified).
    """
    retry_after = ratelimit.exchange_retry_after(source.ip)
    if retry_after:
        # Neither logged nor audited one by one: the warning when the lock engaged stands for these.
        raise TooManyRequests(
            f"Too many refused ID tokens from this address; try again in {retry_after} seconds.",
            retry_after=retry_after,
        )
    try:
        return _exchange(source=source, id_token=id_token)
    except DomainError as exc:
        # Logged, with the request id; audited only once the ID token verified (_refusal_record).
        logger.warning("OIDC token exchange refused: %s %s", exc.type, exc.detail)
        engaged = ratelimit.exchange_note_refusal(source.ip)
        if engaged:
            logger.warning(
                "OIDC token exchange locked for %s after %d refusals, for up to %d seconds",
                ratelimit.address_bucket(source.ip),
                engaged,
                settings.OIDC_EXCHANGE_FAILURE_WINDOW,
            )
        raise


def _exchange(*, source: Source, id_token: str) -> tuple[ApiToken, str]:
    if not isinstance(id_token, str) or not id_token or len(id_token) > 16_384:
        raise InvalidInput.field("token", "must be an ID token (a JWT of at most 16384 characters)")
    issuer = oidc.unverified_issuer(id_token)
    policies = list(TrustPolicy.objects.filter(issuer=issuer, enabled=True).select_related("account"))
    if not policies:
        raise oidc.IdTokenRefused("The ID token's issuer is not trusted.")
    claims = oidc.verify(id_token, issuer=issuer, audiences=sorted({policy.audience for policy in policies}))
    matching = [
        policy
        for policy in policies
        if oidc.policy_matches(audience=policy.audience, conditions=policy.conditions, claims=claims)
    ]
    try:
        if len(matching) != 1:
            cause = "several-policies-match" if matching else "no-policy-matches"
            raise _Refusal(Forbidden(NO_POLICY, type="no-trust-policy"), cause=cause)
        return _token_mint(source=source, policy=matching[0], claims=claims)
    except _Refusal as refusal:
        # The ID token verified: a trusted issuer signed it for our audience, which an anonymous caller cannot
        # forge, so its refusal is recorded (the rate limit bounds how often one address can send such
        # tokens). In a transaction of its own: the exchange's rolled back.
        _refusal_record(source=source, refusal=refusal, claims=claims, policies=policies, matching=matching)
        raise refusal.error from None


class _Refusal(Exception):
    """A refusal of a verified ID token (error is what the caller is answered), with its cause for the log."""

    def __init__(self, error: DomainError, *, cause: str) -> None:
        super().__init__(error.detail)
        self.error = error
        self.cause = cause


@transaction.atomic(durable=True)
def _refusal_record(
    *, source: Source, refusal: _Refusal, claims: dict, policies: list, matching: list
) -> None:
    """Audit the refusal of a verified ID token: its issuer, subject, the claims the issuer's policies match
    on (and the job's context claims), the reason and its cause; never the token.

    The actor is the system: the caller never acted as a service account (none was given to it, and a replay
    may come from whoever copied the token); the policy it invoked, when one was found, is the target.
    """
    conditions = {name: None for policy in policies for name in policy.conditions}
    changes = {
        "issuer": claims["iss"],
        "subject": str(claims["sub"])[:300],
        "claims": oidc.recorded_claims(conditions=conditions, claims=claims),
        "reason": refusal.error.type,
        "cause": refusal.cause,
        "trust_policies": sorted(policy.name for policy in matching),
    }
    if len(matching) == 1:
        changes["account"] = matching[0].account.username
        target = matching[0]
    else:
        target = TargetRef("issuer", "", str(claims["iss"])[:300])
    audit_record(
        actor=None, action=Action.TOKEN_EXCHANGE_REFUSED, target=target, source=source, changes=changes
    )


@transaction.atomic(durable=True)
def _token_mint(*, source: Source, policy: TrustPolicy, claims: dict) -> tuple[ApiToken, str]:
    """Record the ID token as used (a replay is refused), mint the token and audit the exchange."""
    now = timezone.now()
    id_expires = dt.datetime.fromtimestamp(int(claims["exp"]), tz=dt.UTC)
    # Locked: a policy disabled, changed or deleted meanwhile is seen, or waits for this exchange.
    current = TrustPolicy.objects.select_for_update().filter(pk=policy.pk, enabled=True).first()
    if current is None or current.conditions != policy.conditions or current.audience != policy.audience:
        raise _Refusal(Forbidden(NO_POLICY, type="no-trust-policy"), cause="policy-changed")
    account = User.objects.get(pk=current.account_id)
    if not account.is_active or not account.is_service_account:
        raise _Refusal(Forbidden(NO_POLICY, type="no-trust-policy"), cause="account-disabled")
    IdTokenUse.objects.filter(expires_at__lt=now).delete()
    key = hashlib.sha256(f"{claims['iss']}\n{claims['jti']}".encode()).hexdigest()
    try:
        with transaction.atomic():
            IdTokenUse.objects.create(key=key, expires_at=max(id_expires, now) + _leeway())
    except IntegrityError:
        replayed = oidc.IdTokenRefused(
            "The ID token has been exchanged already; request a new one.", type="id-token-replayed"
        )
        raise _Refusal(replayed, cause="replayed") from None
    expires_at = min(now + dt.timedelta(seconds=current.token_lifetime_seconds), id_expires)
    if expires_at <= now:
        raise oidc.IdTokenRefused("The ID token has expired.")
    recorded = oidc.recorded_claims(conditions=current.conditions, claims=claims)
    federation = {
        "issuer": claims["iss"],
        "subject": str(claims["sub"])[:300],
        "trust_policy": current.name,
        "claims": recorded,
    }
    lookup, token = _new_token()
    record = ApiToken.objects.create(
        account=account,
        name=f"oidc: {current.name}"[:100],
        lookup=lookup,
        hashed=ApiToken.hash(token),
        last4=token[-4:],
        scopes=sorted(set(current.scopes)),
        expires_at=expires_at,
        federation=federation,
    )
    audit_record(
        actor=account,
        action=Action.TOKEN_EXCHANGED,
        target=record,
        source=source,
        changes={
            **federation,
            "after": {
                "account": account.username,
                "scopes": record.scopes,
                "expires_at": record.expires_at,
                "lookup": lookup,
            },
        },
    )
    return record, token


def _leeway() -> dt.timedelta:
    return dt.timedelta(seconds=settings.OIDC_LEEWAY_SECONDS)


# Single sign-on for people ---------------------------------------------------------------------------------
#
# The identity provider's ID token (verified by accounts/sso.py through Authlib) names the person; their
# registry account is found by the provider's (issuer, subject), created on first sign-in, and their teams
# follow the provider's groups at every sign-in (SSO_GROUP_TEAMS), each change a team membership event.


def group_teams() -> dict[str, str]:
    """SSO_GROUP_TEAMS as group -> team."""
    pairs = {}
    for item in settings.SSO_GROUP_TEAMS:
        group, _, team = item.rpartition("=")
        if group and team:
            pairs[group.strip()] = team.strip()
    return pairs


def _claimed_username(claims: dict) -> str:
    username = claims.get(settings.SSO_USERNAME_CLAIM) or claims.get("email") or ""
    if not isinstance(username, str) or not 1 <= len(username) <= 150:
        raise InvalidInput.field("username", f"the provider sent no usable {settings.SSO_USERNAME_CLAIM!r}")
    try:
        User.username_validator(username)
    except Exception:
        raise InvalidInput.field("username", f"{username!r} is not a valid account name") from None
    return username


def _sso_account(*, source: Source, claims: dict, issuer: str, subject: str) -> tuple[User, bool]:
    """The account linked to (issuer, subject): linked before, linked now, or created now (audited)."""
    link = ExternalIdentity.objects.filter(issuer=issuer, subject=subject).first()
    if link is not None:
        return User.objects.select_for_update().get(pk=link.user_id), False
    username = _claimed_username(claims)
    existing = accounts_named(username)
    if existing:
        if not settings.SSO_LINK_EXISTING_ACCOUNTS or len(existing) != 1 or existing[0].is_service_account:
            raise Conflict(
                f"An account named {username!r} exists already and is not linked to this sign-in.",
                type="sso-account-conflict",
            )
        user = User.objects.select_for_update().get(pk=existing[0].pk)
        ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        return user, False
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    user = User(
        username=username,
        email=User.objects.normalize_email(email[:254]),
        first_name=str(claims.get("given_name") or "")[:150],
        last_name=str(claims.get("family_name") or "")[:150],
    )
    user.set_unusable_password()
    user.save()
    ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    audit_record(
        actor=None,
        action=Action.ACCOUNT_CREATED,
        target=user,
        source=source,
        changes={
            "after": {
                "service_account": False,
                "email": user.email,
                "password": "none",
                "sso": {"issuer": issuer, "subject": subject},
            }
        },
    )
    return user, True


def _sync_teams(*, source: Source, user: User, groups: list[str]) -> None:
    """Put user in the mapped teams of their groups, and out of the mapped teams of groups they left."""
    pairs = group_teams()
    wanted = {pairs[group] for group in groups if group in pairs}
    current = set(user.groups.values_list("name", flat=True))
    for name in sorted(set(pairs.values())):
        if (name in wanted) == (name in current):
            continue
        team, _ = Group.objects.get_or_create(name=name)
        sources = ", ".join(sorted(group for group, mapped in pairs.items() if mapped == name))
        verb = "includes" if name in wanted else "lacks"
        reason = f"single sign-on: the {settings.SSO_GROUPS_CLAIM} claim {verb} {sources}"
        _membership_change(actor=None, source=source, team=team, user=user, add=name in wanted, reason=reason)


@transaction.atomic(durable=True)
def sso_sign_in(*, source: Source, claims: dict) -> User:
    """A person signed in at the identity provider: their account (created on first sign-in), their teams
    brought in line with the provider's groups, and the sign-in recorded; all in one transaction."""
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not isinstance(issuer, str) or not isinstance(subject, str) or not subject:
        raise InvalidInput.field("sub", "the provider's ID token names no subject")
    user, created = _sso_account(source=source, claims=claims, issuer=issuer, subject=subject[:255])
    if user.is_service_account or not user.is_active:
        raise Forbidden("This account cannot sign in.", type="account-disabled")
    groups = claims.get(settings.SSO_GROUPS_CLAIM) if settings.SSO_GROUPS_CLAIM else None
    groups = [group for group in groups if isinstance(group, str)] if isinstance(groups, list) else []
    if settings.SSO_GROUPS_CLAIM:
        _sync_teams(source=source, user=user, groups=groups)
    audit_record(
        actor=user,
        action=Action.LOGIN_SUCCEEDED,
        target=user,
        source=source,
        changes={"method": "sso", "issuer": issuer, "subject": subject[:255], "created": created},
    )
    return user
