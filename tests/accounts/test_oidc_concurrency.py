"""Races on PostgreSQL: one ID token sent by two workers at once is exchanged exactly once."""

import pytest

from accounts import oidc
from accounts.federation import token_exchange, trust_policy_create
from accounts.models import ApiToken, IdTokenUse
from audit.models import AuditEvent
from core.source import Source
from tests.factories import ServiceAccountFactory
from tests.helpers import run_at_once
from tests.oidc_issuer import github_claims

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_one_id_token_exchanged_twice_at_once_mints_one_token(oidc_issuer):
    trust_policy_create(
        actor=None,
        source=Source.cli(),
        name="fraud-main",
        provider="github",
        issuer=oidc_issuer.url,
        audience="https://registry.example.test",
        conditions={"repository": "acme/fraud"},
        account=ServiceAccountFactory(username="ci-race"),
        scopes=["read"],
    )
    for attempt in range(3):
        token = oidc_issuer.token(**github_claims())

        def send(i, token=token):
            token_exchange(source=Source.cli(), id_token=token)

        errors = run_at_once(send, 2)
        assert len(errors) == 1 and isinstance(errors[0], oidc.IdTokenRefused), errors
        assert errors[0].type == "id-token-replayed"
        assert ApiToken.objects.count() == IdTokenUse.objects.count() == attempt + 1
    assert AuditEvent.objects.filter(action="token.exchanged").count() == 3
