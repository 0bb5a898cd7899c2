"""Every operation of the OpenAPI schema, fuzzed in-process by schemathesis: no input makes the server fail,
and every answer (status and body) is one the schema documents.

The Django WSGI application answers in this process, on the test database, to a registry admin's token that
holds every scope. Schemathesis runs its coverage phase (boundary and invalid values of every parameter and
body member, unexpected methods such as OPTIONS) and a fuzzing phase of EXAMPLES cases per operation. Path
parameters name rows that exist (half of the fuzzed cases, and every coverage case that varies something
else), so that requests reach the views and services instead of stopping at 404. Derandomized: the same cases
every run, about 4,500 requests and 45 s of CPU.
"""

import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from guardian.shortcuts import assign_perm
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.meta import CoveragePhaseData
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from accounts.services import token_create
from approvals.models import OutboxMessage
from approvals.services import promotion_request
from config.wsgi import application
from core.source import Channel, Credential, CredentialKind, Source
from registry.models import Asset, AssetKind, Stage
from registry.services import asset_update
from tests.factories import AssetFactory, PolicyFactory, UserFactory, VersionFactory
from webhooks.models import WebhookSubscription, new_secret

EXAMPLES = 12  # fuzzed cases per operation (88 operations)
EXISTING: dict[str, int] = {}  # ids of the rows `arranged` made, by the route prefix that names them

# Loaded when the module is collected: the schema view reads no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


def existing_path_values(path: str) -> dict:
    """Path parameter values that name rows `arranged` made, for the operation at path."""
    values = {"name": "a", "number": 1, "stage": "staging", "principal_type": "user", "principal": "bob"}
    values.update(role="view", team="fuzzers", user="bob", username="bob")
    for prefix in ("promotions", "policies", "tokens", "webhooks"):
        if path.startswith(f"/api/v1/{prefix}/"):
            values["id"] = EXISTING.get(prefix, 1)
    values["delivery"] = EXISTING.get("deliveries", 1)
    return values


def with_existing(path: str, path_parameters: dict) -> dict:
    known = existing_path_values(path)
    return {name: known.get(name, value) for name, value in path_parameters.items()}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    if not path_parameters:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, with_existing(context.operation.path, path_parameters)])


@pytest.fixture
def arranged(db):
    """An admin with a token of every scope; bob with a token to revoke; asset "a" of each kind with two
    versions, viewed and reviewed by bob; a policy and a pending promotion for the model; a webhook on it
    with one delivery.

    The WSGI handler shares the test's connection. As in Django's test client, close_old_connections is
    disconnected: it would close that connection inside the test's transaction."""
    admin = UserFactory(username="admin", global_role="admin")
    bob = UserFactory(username="bob")
    scopes = ["read", "write", "promote", "review", "manage"]
    # A review token is made only by its own person from a signed-in session.
    signed_in = Source(channel=Channel.WEB, credential=Credential(kind=CredentialKind.SESSION))
    token = token_create(actor=admin, source=signed_in, account=admin, name="fuzz", scopes=scopes)[1]
    spare = token_create(actor=None, source=Source.cli(), account=bob, name="spare", scopes=["read"])[0]
    for kind in AssetKind.values:
        asset = AssetFactory(kind=kind, name="a")
        for _ in range(2):
            VersionFactory(asset=asset, **({"template": "Say {{thing}}"} if kind == AssetKind.PROMPT else {}))
        assign_perm("registry.view_asset", bob, asset)
        assign_perm("registry.review_asset", bob, asset)
    bob.groups.add(Group.objects.create(name="fuzzers"))
    model = Asset.objects.get(kind=AssetKind.MODEL, name="a")
    production = Stage.objects.get(name="production")
    policy = PolicyFactory(asset=model, stage=production, required_approvals=2)
    promotion = promotion_request(
        actor=admin,
        source=Source.cli(),
        asset=model,
        version=model.versions.get(number=2),
        stage=production,
        justification="ship",
    )
    webhook = WebhookSubscription.objects.create(
        url="https://hooks.example.org/", events=["*"], asset=model, secret=new_secret(), created_by=admin
    )
    asset_update(actor=admin, source=Source.cli(), asset=model, tags=["fuzzed"])  # one delivery to redeliver
    delivery = OutboxMessage.objects.get(webhook=str(webhook.pk))
    EXISTING.update(
        promotions=promotion.pk,
        policies=policy.pk,
        tokens=spare.pk,
        webhooks=webhook.pk,
        deliveries=delivery.pk,
    )
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield {"Authorization": f"Bearer {token}"}
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_server_fail(case, arranged):
    phase = case.meta.phase.data if case.meta else None
    if case.path_parameters and isinstance(phase, CoveragePhaseData) and phase.parameter_location != "path":
        # A coverage case that varies the body, query or headers: name existing rows, to reach the view.
        case.path_parameters = with_existing(case.operation.path, case.path_parameters)
    # Every answer, refusals included, is one the schema documents, with the body it documents (the problem
    # answers come from core/openapi.py).
    case.call_and_validate(
        headers=arranged, checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
    )
