"""Services of identity federation: trust policies (admins; each change audited) and the exchange of a CI
job's OIDC ID token for a short-lived registry token (audited, with the issuer, subject and matched claims).

The checks of a token are in accounts/oidc.py; the exchange fetches the issuer's keys before its transaction
begins, so no database transaction waits on the network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import oidc
from accounts.models import ApiToken, IdTokenUse, TrustPolicy, User
from accounts.permissions import require_admin
from accounts.services import _new_token
from audit.models import Action
from audit.services import audit_record
from core.exceptions import Conflict, DomainError, Forbidden, InvalidInput
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
    or several policies match: which ones is not said).
    """
    try:
        return _exchange(source=source, id_token=id_token)
    except DomainError as exc:
        # Not an audit event: an anonymous caller could grow the log at will. Logged, with the request id.
        logger.warning("OIDC token exchange refused: %s %s", exc.type, exc.detail)
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
    if len(matching) != 1:
        raise Forbidden(NO_POLICY, type="no-trust-policy")
    return _token_mint(source=source, policy=matching[0], claims=claims)


@transaction.atomic(durable=True)
def _token_mint(*, source: Source, policy: TrustPolicy, claims: dict) -> tuple[ApiToken, str]:
    """Record the ID token as used (a replay is refused), mint the token and audit the exchange."""
    now = timezone.now()
    id_expires = dt.datetime.fromtimestamp(int(claims["exp"]), tz=dt.UTC)
    # Locked: a policy disabled, changed or deleted meanwhile is seen, or waits for this exchange.
    current = TrustPolicy.objects.select_for_update().filter(pk=policy.pk, enabled=True).first()
    if current is None or current.conditions != policy.conditions or current.audience != policy.audience:
        raise Forbidden(NO_POLICY, type="no-trust-policy")
    account = User.objects.get(pk=current.account_id)
    if not account.is_active or not account.is_service_account:
        raise Forbidden(NO_POLICY, type="no-trust-policy")
    IdTokenUse.objects.filter(expires_at__lt=now).delete()
    key = hashlib.sha256(f"{claims['iss']}\n{claims['jti']}".encode()).hexdigest()
    try:
        with transaction.atomic():
            IdTokenUse.objects.create(key=key, expires_at=max(id_expires, now) + _leeway())
    except IntegrityError:
        raise oidc.IdTokenRefused(
            "The ID token has been exchanged already; request a new one.", type="id-token-replayed"
        ) from None
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
