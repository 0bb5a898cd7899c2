"""CI signs in with its OIDC ID token: the exchange for a short-lived registry token, against a local issuer
(tests/oidc_issuer.py), and each way a token is refused."""

import datetime as dt
import time

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import oidc
from accounts.federation import token_exchange, trust_policy_create
from accounts.models import ApiToken, IdTokenUse
from audit.models import AuditEvent
from core.source import Source
from registry.models import AssetVersion
from tests.factories import ServiceAccountFactory, digest_for, grant
from tests.helpers import api_client
from tests.oidc_issuer import github_claims, gitlab_claims, new_key

pytestmark = pytest.mark.django_db
AUDIENCE = "https://registry.example.test"
EXCHANGE = "/api/v1/auth/oidc/token"


def github_policy(local, account, **overrides):
    fields = {
        "name": "fraud-main",
        "provider": "github",
        "issuer": local.url,
        "audience": AUDIENCE,
        "conditions": {"repository": "acme/fraud", "ref": "refs/heads/main", "environment": "prod"},
        "account": account,
        "scopes": ["read", "write"],
        "token_lifetime_seconds": 900,
    }
    fields.update(overrides)
    return trust_policy_create(actor=None, source=Source.cli(), **fields)


@pytest.fixture
def policy(oidc_issuer, service_account, fraud):
    grant(service_account, fraud, "contribute")
    return github_policy(oidc_issuer, service_account)


def exchange(token):
    return api_client().post(EXCHANGE, {"token": token}, format="json")


def refused(response, status, type_):
    assert response.status_code == status, response.content
    assert response.json()["type"] == type_
    assert not ApiToken.objects.exists()
    return response.json()["detail"]


def test_a_matching_token_gets_a_short_lived_scoped_token_that_registers_a_version(oidc_issuer, policy):
    id_token = oidc_issuer.token(**github_claims())
    response = exchange(id_token)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["account"] == "ci-bot" and body["scopes"] == ["read", "write"]
    assert body["trust_policy"] == "fraud-main" and body["token_type"] == "Bearer"
    assert response["Cache-Control"] == "no-store"
    record = ApiToken.objects.get()
    assert record.expires_at <= timezone.now() + dt.timedelta(seconds=900)
    # The exchange is an audit event with the issuer, the subject and the matched claims.
    event = AuditEvent.objects.get(action="token.exchanged")
    assert event.actor_repr == "ci-bot"
    assert event.changes["issuer"] == oidc_issuer.url
    assert event.changes["subject"] == "repo:acme/fraud:environment:prod"
    assert event.changes["claims"]["repository"] == "acme/fraud"
    assert event.changes["claims"]["sha"] == "a" * 40

    ci = api_client(token=body["token"])
    created = ci.post("/api/v1/models/fraud/versions", {"digest": digest_for("oidc")}, format="json")
    assert created.status_code == 201, created.content
    assert AssetVersion.objects.filter(asset__name="fraud", digest=digest_for("oidc")).exists()
    # ... and every action of the minted token carries the job's identity in its context.
    registered = AuditEvent.objects.get(action="version.created")
    assert registered.context["credential"]["oidc"] == {
        "issuer": oidc_issuer.url,
        "subject": "repo:acme/fraud:environment:prod",
        "trust_policy": "fraud-main",
        "claims": event.changes["claims"],
    }


def test_the_token_never_outlives_the_id_token(oidc_issuer, policy):
    expires = int(time.time()) + 120
    response = exchange(oidc_issuer.token(**github_claims(), exp=expires))
    assert response.status_code == 201, response.content
    assert ApiToken.objects.get().expires_at == dt.datetime.fromtimestamp(expires, tz=dt.UTC)


def test_the_token_cannot_exceed_the_policy_scopes(oidc_issuer, service_account, fraud):
    grant(service_account, fraud, "contribute")
    github_policy(oidc_issuer, service_account, scopes=["read"])
    token = exchange(oidc_issuer.token(**github_claims())).json()["token"]
    ci = api_client(token=token)
    assert ci.get("/api/v1/models/fraud").status_code == 200
    created = ci.post("/api/v1/models/fraud/versions", {"digest": digest_for("x")}, format="json")
    assert created.status_code == 403 and created.json()["type"] == "insufficient-scope"


def test_the_token_cannot_exceed_the_account_roles(oidc_issuer, service_account, fraud):
    grant(service_account, fraud, "view")  # the policy gives write, the account may only view
    github_policy(oidc_issuer, service_account, scopes=["read", "write", "promote"])
    token = exchange(oidc_issuer.token(**github_claims())).json()["token"]
    created = api_client(token=token).post(
        "/api/v1/models/fraud/versions", {"digest": digest_for("x")}, format="json"
    )
    assert created.status_code == 403, created.content
    assert not AssetVersion.objects.filter(digest=digest_for("x")).exists()


def test_a_policy_never_gives_review_or_manage(oidc_issuer, service_account):
    for scope in ("review", "manage"):
        with pytest.raises(oidc.InvalidInput, match="scopes"):
            github_policy(oidc_issuer, service_account, scopes=["read", scope])


def test_a_person_cannot_be_bound(oidc_issuer, reviewer):
    with pytest.raises(oidc.InvalidInput, match="service account"):
        github_policy(oidc_issuer, reviewer)


def test_a_github_policy_must_name_the_repository(oidc_issuer, service_account):
    with pytest.raises(oidc.InvalidInput, match="repository"):
        github_policy(oidc_issuer, service_account, conditions={"ref": "refs/heads/main"})


def test_an_issuer_must_be_https_outside_loopback(oidc_issuer, service_account, settings):
    with pytest.raises(oidc.InvalidInput, match="https"):
        github_policy(oidc_issuer, service_account, issuer="http://ci.example.org")
    settings.OIDC_ALLOW_INSECURE_LOOPBACK_ISSUERS = False
    with pytest.raises(oidc.InvalidInput, match="https"):
        github_policy(oidc_issuer, service_account)


# Refusals ----------------------------------------------------------------------------------------------


def test_wrong_signature(oidc_issuer, policy):
    forged = oidc_issuer.token(**github_claims(), key=new_key())  # another key, under the published kid
    assert "signature" in refused(exchange(forged), 401, "id-token-invalid")


def test_unknown_kid_is_refetched_once_then_refused(oidc_issuer, policy, settings):
    settings.OIDC_JWKS_REFETCH_SECONDS = 0
    assert exchange(oidc_issuer.token(**github_claims())).status_code == 201
    assert oidc_issuer.jwks_fetches == 1
    ApiToken.objects.all().delete()
    stranger = oidc_issuer.token(**github_claims(), key=new_key(), kid="key-unknown")
    assert "does not publish" in refused(exchange(stranger), 401, "id-token-invalid")
    assert oidc_issuer.jwks_fetches == 2  # the keys were fetched again, once, before refusing


def test_a_rotated_key_is_found_by_the_refetch(oidc_issuer, policy, settings):
    settings.OIDC_JWKS_REFETCH_SECONDS = 0
    assert exchange(oidc_issuer.token(**github_claims())).status_code == 201
    rotated = new_key()
    oidc_issuer.published["key-2"] = rotated
    assert exchange(oidc_issuer.token(**github_claims(), key=rotated, kid="key-2")).status_code == 201
    assert oidc_issuer.jwks_fetches == 2


def test_the_refetch_is_rate_limited(oidc_issuer, policy, settings):
    settings.OIDC_JWKS_REFETCH_SECONDS = 3600
    assert exchange(oidc_issuer.token(**github_claims())).status_code == 201
    ApiToken.objects.all().delete()
    for _ in range(3):
        stranger = oidc_issuer.token(**github_claims(), key=new_key(), kid="key-unknown")
        refused(exchange(stranger), 401, "id-token-invalid")
    assert oidc_issuer.jwks_fetches == 1


def test_the_key_cache_has_a_bounded_lifetime(oidc_issuer, policy, settings):
    settings.OIDC_JWKS_CACHE_SECONDS = 0
    for _ in range(2):
        assert exchange(oidc_issuer.token(**github_claims())).status_code == 201
    assert oidc_issuer.jwks_fetches == 2


def test_wrong_audience(oidc_issuer, policy):
    token = oidc_issuer.token(**github_claims(), aud="https://elsewhere.example.org")
    assert "audience" in refused(exchange(token), 401, "id-token-invalid")


def test_wrong_issuer(oidc_issuer, policy):
    token = oidc_issuer.token(**github_claims(), iss="https://token.actions.githubusercontent.com")
    assert "issuer" in refused(exchange(token), 401, "id-token-invalid")
    assert oidc_issuer.jwks_fetches == 0


def test_expired(oidc_issuer, policy):
    past = int(time.time()) - 3600
    token = oidc_issuer.token(**github_claims(), iat=past - 300, nbf=past - 300, exp=past)
    assert "expired" in refused(exchange(token), 401, "id-token-invalid")


def test_not_yet_valid(oidc_issuer, policy):
    future = int(time.time()) + 3600
    token = oidc_issuer.token(**github_claims(), nbf=future, exp=future + 300)
    assert "not valid yet" in refused(exchange(token), 401, "id-token-invalid")


def test_issued_in_the_future(oidc_issuer, policy):
    future = int(time.time()) + 3600
    token = oidc_issuer.token(**github_claims(), iat=future, nbf=None, exp=future + 300)
    assert "not valid yet" in refused(exchange(token), 401, "id-token-invalid")


def test_replayed_jti(oidc_issuer, policy):
    token = oidc_issuer.token(**github_claims(), jti="run-4242-attempt-1")
    assert exchange(token).status_code == 201
    again = exchange(token)
    assert again.status_code == 401 and again.json()["type"] == "id-token-replayed"
    # Another token (issued later) with the same jti is a replay too; a new jti is not.
    same_jti = oidc_issuer.token(**github_claims(), jti="run-4242-attempt-1", iat=int(time.time()) - 5)
    assert exchange(same_jti).json()["type"] == "id-token-replayed"
    assert ApiToken.objects.count() == 1
    assert exchange(oidc_issuer.token(**github_claims())).status_code == 201
    assert IdTokenUse.objects.count() == 2


def test_spent_ids_are_forgotten_once_expired(oidc_issuer, policy):
    IdTokenUse.objects.create(key="0" * 64, expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert exchange(oidc_issuer.token(**github_claims())).status_code == 201
    assert not IdTokenUse.objects.filter(key="0" * 64).exists()


def test_a_token_without_jti(oidc_issuer, policy):
    assert "jti" in refused(exchange(oidc_issuer.token(**github_claims(), jti=None)), 401, "id-token-invalid")


@pytest.mark.parametrize(
    "claims",
    [
        github_claims(repository="acme/other", sub="repo:acme/other:environment:prod"),
        github_claims(ref="refs/heads/feature"),
        github_claims(environment="staging"),
        github_claims(environment=None),
    ],
    ids=["another-repository", "another-ref", "another-environment", "no-environment"],
)
def test_a_claim_that_does_not_match(oidc_issuer, policy, claims):
    detail = refused(exchange(oidc_issuer.token(**claims)), 403, "no-trust-policy")
    assert detail == "No trust policy accepts this ID token."


def test_gitlab_unprotected_ref(oidc_issuer, service_account):
    github_policy(
        oidc_issuer,
        service_account,
        provider="gitlab",
        conditions={"project_path": "acme/fraud", "ref": "main", "ref_protected": "true"},
    )
    assert exchange(oidc_issuer.token(**gitlab_claims())).status_code == 201
    ApiToken.objects.all().delete()
    unprotected = oidc_issuer.token(**gitlab_claims(ref_protected="false"))
    assert refused(exchange(unprotected), 403, "no-trust-policy") == "No trust policy accepts this ID token."


def test_two_matching_policies(oidc_issuer, policy, service_account):
    github_policy(oidc_issuer, service_account, name="fraud-any-ref", conditions={"repository": "acme/fraud"})
    detail = refused(exchange(oidc_issuer.token(**github_claims())), 403, "no-trust-policy")
    assert "fraud" not in detail  # which policies matched is not said


def test_a_disabled_policy_matches_nothing(oidc_issuer, policy):
    policy.enabled = False
    policy.save()
    assert "issuer" in refused(exchange(oidc_issuer.token(**github_claims())), 401, "id-token-invalid")


def test_alg_none(oidc_issuer, policy):
    assert "algorithm" in refused(exchange(oidc_issuer.unsigned(**github_claims())), 401, "id-token-invalid")


def test_hs256_signed_with_the_public_key(oidc_issuer, policy):
    token = oidc_issuer.hmac_with_public_key(**github_claims())
    assert "algorithm" in refused(exchange(token), 401, "id-token-invalid")


def test_garbage_and_missing_token(oidc_issuer, policy):
    refused(exchange("not-a-jwt"), 401, "id-token-invalid")
    response = api_client().post(EXCHANGE, {}, format="json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "token"


def test_an_unreachable_issuer_is_refused_not_failed(oidc_issuer, policy):
    token = oidc_issuer.token(**github_claims())
    oidc_issuer.stop()
    assert "cannot be fetched" in refused(exchange(token), 401, "id-token-invalid")


def test_a_disabled_account_gets_nothing(oidc_issuer, policy, service_account):
    service_account.is_active = False
    service_account.save()
    refused(exchange(oidc_issuer.token(**github_claims())), 403, "no-trust-policy")


def test_the_service_refuses_without_writing(oidc_issuer, policy):
    before = AuditEvent.objects.count()
    with pytest.raises(oidc.IdTokenRefused):
        token_exchange(source=Source.cli(), id_token=oidc_issuer.unsigned(**github_claims()))
    assert AuditEvent.objects.count() == before


def test_an_exchange_whose_event_cannot_be_written_leaves_nothing(oidc_issuer, policy, monkeypatch):
    import accounts.federation

    def broken(**kwargs):
        raise RuntimeError("the audit log is unavailable")

    token = oidc_issuer.token(**github_claims())
    monkeypatch.setattr(accounts.federation, "audit_record", broken)
    with pytest.raises(RuntimeError):
        token_exchange(source=Source.cli(), id_token=token)
    assert not ApiToken.objects.exists() and not IdTokenUse.objects.exists()
    monkeypatch.undo()
    assert exchange(token).status_code == 201  # the ID token was not spent by the failed exchange


def exchange_queries(oidc_issuer, count: int) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for index in range(count):
        github_policy(
            oidc_issuer,
            ServiceAccountFactory(),
            name=f"other-{count}-{index}",
            conditions={"repository": f"acme/other-{index}"},
        )
    token = oidc_issuer.token(**github_claims())
    with CaptureQueriesContext(connection) as captured:
        assert exchange(token).status_code == 201
    return len(captured)


def test_exchange_query_count_is_pinned(oidc_issuer, policy, django_assert_max_num_queries):
    assert exchange_queries(oidc_issuer, 1) == exchange_queries(oidc_issuer, 15)
    # The issuer's enabled policies with their accounts; in the transaction: the matched policy locked, its
    # account, expired spent ids deleted, the spent id inserted (in a savepoint: 3), the token inserted, the
    # audit head locked, the event inserted, the head updated; plus the transaction's own statements.
    with django_assert_max_num_queries(15):
        exchange(oidc_issuer.token(**github_claims()))


# Refusals of a verified ID token are audited; the others are only logged ---------------------------------

# The policy's conditions (repository, ref, environment) and the context claims github_claims has.
RECORDED = ("repository", "ref", "sha", "environment", "workflow_ref", "job_workflow_ref", "run_id")
RECORDED += ("run_attempt", "actor")


def recorded(**overrides) -> dict:
    """The claims a refusal records for the policy fixture's issuer: the conditions' and the job's context."""
    claims = github_claims(**overrides)
    return {
        name: claims[name] for name in (*RECORDED, "run_attempt", "actor") if claims.get(name) is not None
    }


def only_refusal_event(before: int) -> AuditEvent:
    """The one event written since before: a token.exchange_refused event; no token, no spent ID."""
    events = list(AuditEvent.objects.filter(seq__gt=before).order_by("seq"))
    assert [event.action for event in events] == ["token.exchange_refused"]
    event = events[0]
    assert event.actor_kind == "system" and event.actor_id is None and event.actor_repr == "system"
    assert "token" not in event.changes  # never the ID token itself
    return event


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_no_matching_policy_is_audited_with_the_claims_policies_match_on(oidc_issuer, policy):
    before = last_seq()
    token = oidc_issuer.token(
        **github_claims(repository="acme/other", sub="repo:acme/other:environment:prod")
    )
    refused(exchange(token), 403, "no-trust-policy")
    event = only_refusal_event(before)
    assert event.changes == {
        "issuer": oidc_issuer.url,
        "subject": "repo:acme/other:environment:prod",
        "claims": recorded(repository="acme/other"),
        "reason": "no-trust-policy",
        "cause": "no-policy-matches",
        "trust_policies": [],
    }
    assert (event.target_kind, event.target_id, event.target_repr) == ("issuer", "", oidc_issuer.url)
    assert token not in event.body.decode() and token.split(".")[2] not in event.body.decode()
    assert not IdTokenUse.objects.exists()


def test_several_matching_policies_are_audited_with_their_names(oidc_issuer, policy, service_account):
    github_policy(oidc_issuer, service_account, name="fraud-any-ref", conditions={"repository": "acme/fraud"})
    before = last_seq()
    refused(exchange(oidc_issuer.token(**github_claims())), 403, "no-trust-policy")
    event = only_refusal_event(before)
    assert event.changes["cause"] == "several-policies-match"
    assert event.changes["trust_policies"] == ["fraud-any-ref", "fraud-main"]
    assert event.changes["claims"] == recorded()
    assert event.target_kind == "issuer" and "account" not in event.changes
    assert not IdTokenUse.objects.exists()


def test_a_disabled_account_is_audited_against_its_policy(oidc_issuer, policy, service_account):
    service_account.is_active = False
    service_account.save()
    before = last_seq()
    refused(exchange(oidc_issuer.token(**github_claims())), 403, "no-trust-policy")
    event = only_refusal_event(before)
    assert event.changes == {
        "issuer": oidc_issuer.url,
        "subject": "repo:acme/fraud:environment:prod",
        "claims": recorded(),
        "reason": "no-trust-policy",
        "cause": "account-disabled",
        "trust_policies": ["fraud-main"],
        "account": "ci-bot",
    }
    assert (event.target_kind, event.target_id, event.target_repr) == (
        "accounts.trustpolicy",
        str(policy.pk),
        str(policy),
    )
    assert not IdTokenUse.objects.exists()


def test_a_policy_changed_meanwhile_is_audited(oidc_issuer, policy, monkeypatch):
    import accounts.federation
    from accounts.models import TrustPolicy

    mint = accounts.federation._token_mint

    def changed_first(**kwargs):  # an admin narrows the policy between the match and the locked re-read
        TrustPolicy.objects.filter(pk=policy.pk).update(conditions={"repository": "acme/fraud", "ref": "x"})
        return mint(**kwargs)

    monkeypatch.setattr(accounts.federation, "_token_mint", changed_first)
    before = last_seq()
    refused(exchange(oidc_issuer.token(**github_claims())), 403, "no-trust-policy")
    event = only_refusal_event(before)
    assert event.changes["cause"] == "policy-changed" and event.changes["trust_policies"] == ["fraud-main"]
    assert event.target_kind == "accounts.trustpolicy" and event.target_id == str(policy.pk)
    assert not IdTokenUse.objects.exists()


def test_a_replay_is_audited_once_and_spends_nothing(oidc_issuer, policy):
    token = oidc_issuer.token(**github_claims(), jti="run-4242-attempt-1")
    assert exchange(token).status_code == 201
    before = last_seq()
    again = exchange(token)
    assert again.status_code == 401 and again.json()["type"] == "id-token-replayed"
    event = only_refusal_event(before)
    assert event.changes == {
        "issuer": oidc_issuer.url,
        "subject": "repo:acme/fraud:environment:prod",
        "claims": recorded(),
        "reason": "id-token-replayed",
        "cause": "replayed",
        "trust_policies": ["fraud-main"],
        "account": "ci-bot",
    }
    assert ApiToken.objects.count() == IdTokenUse.objects.count() == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda issuer: "not-a-jwt",
        lambda issuer: issuer.unsigned(**github_claims()),
        lambda issuer: issuer.token(**github_claims(), key=new_key()),
        lambda issuer: issuer.token(**github_claims(), aud="https://elsewhere.example.org"),
        lambda issuer: issuer.token(**github_claims(), iss="https://token.actions.githubusercontent.com"),
        lambda issuer: issuer.token(
            **github_claims(), exp=int(time.time()) - 3600, iat=int(time.time()) - 4000
        ),
        lambda issuer: issuer.token(**github_claims(), jti=None),
    ],
    ids=["garbage", "alg-none", "bad-signature", "wrong-audience", "unknown-issuer", "expired", "no-jti"],
)
def test_a_token_that_does_not_verify_is_only_logged(oidc_issuer, policy, make, caplog):
    before = last_seq()
    refused(exchange(make(oidc_issuer)), 401, "id-token-invalid")
    assert last_seq() == before
    assert "OIDC token exchange refused: id-token-invalid" in caplog.text


# The rate limit per client address -------------------------------------------------------------------------


def exchange_from(address, token):
    return APIClient(REMOTE_ADDR=address).post(EXCHANGE, {"token": token}, format="json")


def test_the_lock_engages_after_the_limit_and_answers_429_without_verifying(oidc_issuer, policy, settings):
    settings.OIDC_EXCHANGE_FAILURE_LIMIT = 3
    settings.OIDC_EXCHANGE_FAILURE_WINDOW = 300
    for _ in range(3):
        refused(exchange_from("10.9.0.1", "not-a-jwt"), 401, "id-token-invalid")
    before = last_seq()
    locked = exchange_from("10.9.0.1", oidc_issuer.token(**github_claims()))  # a good token, unseen
    assert locked.status_code == 429
    assert locked["Content-Type"] == "application/problem+json"
    assert locked.json() == {
        "type": "throttled",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "Too many refused ID tokens from this address; "
        f"try again in {locked['Retry-After']} seconds.",
    }
    assert 1 <= int(locked["Retry-After"]) <= 300
    assert oidc_issuer.jwks_fetches == 0  # nothing was fetched or verified
    assert last_seq() == before and not ApiToken.objects.exists() and not IdTokenUse.objects.exists()
    # Another address is unaffected; one in the same IPv6 /64 would share the lock.
    assert exchange_from("10.9.0.2", oidc_issuer.token(**github_claims())).status_code == 201


def test_audited_refusals_count_and_ipv6_counts_per_64(oidc_issuer, policy, settings):
    settings.OIDC_EXCHANGE_FAILURE_LIMIT = 2
    other = oidc_issuer.token(**github_claims(environment="staging"))  # verifies; matches no policy
    refused(exchange_from("2001:db8:5:6::1", other), 403, "no-trust-policy")
    refused(exchange_from("2001:db8:5:6::2", other), 403, "no-trust-policy")
    assert exchange_from("2001:db8:5:6::3", oidc_issuer.token(**github_claims())).status_code == 429
    assert AuditEvent.objects.filter(action="token.exchange_refused").count() == 2
    assert exchange_from("2001:db8:5:7::1", oidc_issuer.token(**github_claims())).status_code == 201


def test_successful_exchanges_do_not_count(oidc_issuer, policy, settings):
    settings.OIDC_EXCHANGE_FAILURE_LIMIT = 2
    for _ in range(3):
        assert exchange_from("10.9.1.1", oidc_issuer.token(**github_claims())).status_code == 201
    ApiToken.objects.all().delete()
    refused(exchange_from("10.9.1.1", "not-a-jwt"), 401, "id-token-invalid")  # the first refusal: 1 of 2
    assert exchange_from("10.9.1.1", oidc_issuer.token(**github_claims())).status_code == 201


def test_the_lock_ends_with_its_window(oidc_issuer, policy, settings, monkeypatch, caplog):
    from types import SimpleNamespace

    from accounts import ratelimit

    settings.OIDC_EXCHANGE_FAILURE_LIMIT = 2
    settings.OIDC_EXCHANGE_FAILURE_WINDOW = 600
    now = 1_800_000_400.0  # 400 s past a multiple of 600: the window ends in 200 s
    clock = SimpleNamespace(time=lambda: now)
    monkeypatch.setattr(ratelimit, "time", clock)
    for _ in range(2):
        refused(exchange_from("10.9.2.1", "not-a-jwt"), 401, "id-token-invalid")
    assert "OIDC token exchange locked for 10.9.2.1 after 2 refusals" in caplog.text
    locked = exchange_from("10.9.2.1", oidc_issuer.token(**github_claims()))
    assert (locked.status_code, locked["Retry-After"]) == (429, "200")
    clock.time = lambda: now + 199.5
    assert exchange_from("10.9.2.1", oidc_issuer.token(**github_claims()))["Retry-After"] == "1"
    clock.time = lambda: now + 200
    assert exchange_from("10.9.2.1", oidc_issuer.token(**github_claims())).status_code == 201
