"""`registry_ci.py --oidc`, run as a subprocess against a live server and the local OIDC issuer: as in a
GitHub Actions job (the runner's ID token endpoint served on loopback) and a GitLab CI job (an `id_tokens:`
variable), with no stored registry token."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.federation import trust_policy_create
from accounts.models import ApiToken
from audit.models import AuditEvent
from core.source import Source
from registry.models import AssetVersion
from tests.factories import AssetFactory, ServiceAccountFactory, digest_for, grant
from tests.oidc_issuer import GITHUB_REQUEST_TOKEN, github_claims, gitlab_claims

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "registry_ci.py"
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def ci_account():
    account = ServiceAccountFactory(username="ci-oidc")
    grant(account, AssetFactory(name="fraud"), "contribute")
    return account


def policy(local, account, audience, **fields):
    return trust_policy_create(
        actor=None,
        source=Source.cli(),
        **{
            "name": "fraud-main",
            "provider": "github",
            "issuer": local.url,
            "audience": audience,
            "conditions": {"repository": "acme/fraud", "ref": "refs/heads/main"},
            "account": account,
            "scopes": ["read", "write"],
            **fields,
        },
    )


def register(live_server, tmp_path, env, *extra):
    body = tmp_path / "version.json"
    body.write_text(json.dumps({"digest": digest_for("oidc-client")}))
    command = [sys.executable, str(CLIENT), "--url", live_server.url, "--oidc", *extra]
    command += ["register", "--name", "fraud", "--file", str(body)]
    done = subprocess.run(
        command, capture_output=True, text=True, env={"PATH": "/usr/bin", **env}, timeout=60, check=False
    )
    return done.returncode, done.stdout, done.stderr


def test_github_actions_job_registers_a_version_with_its_id_token(
    live_server, oidc_issuer, ci_account, tmp_path
):
    policy(oidc_issuer, ci_account, audience=live_server.url)
    env = {
        "GITHUB_ACTIONS": "true",
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{oidc_issuer.url}/github/id-token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": GITHUB_REQUEST_TOKEN,
    }
    code, out, err = register(live_server, tmp_path, env)
    assert code == 0, err
    assert json.loads(out)["version"] == 1
    assert "signed in with the job's ID token: ci-oidc" in err
    # The runner was asked for a token with the registry as its audience, with the request token.
    (request,) = oidc_issuer.github_requests
    assert request["authorization"] == f"bearer {GITHUB_REQUEST_TOKEN}"
    assert request["query"] == {"api-version": ["2.0"], "audience": [live_server.url]}
    version = AssetVersion.objects.get(asset__name="fraud")
    assert version.created_by.username == "ci-oidc"
    event = AuditEvent.objects.get(action="version.created")
    assert event.context["credential"]["oidc"]["claims"]["repository"] == "acme/fraud"
    assert ApiToken.objects.get().federation["trust_policy"] == "fraud-main"


def test_gitlab_job_reads_its_id_token_from_the_named_variable(
    live_server, oidc_issuer, ci_account, tmp_path
):
    policy(
        oidc_issuer,
        ci_account,
        audience="registry",
        provider="gitlab",
        conditions={"project_path": "acme/fraud", "ref_protected": "true"},
    )
    env = {"GITLAB_CI": "true", "REGISTRY_OIDC_TOKEN": oidc_issuer.token(**gitlab_claims(), aud="registry")}
    code, out, err = register(
        live_server,
        tmp_path,
        env,
        "--oidc-audience",
        "registry",
        "--oidc-token-variable",
        "REGISTRY_OIDC_TOKEN",
    )
    assert code == 0, err
    assert json.loads(out)["version"] == 1
    event = AuditEvent.objects.get(action="version.created")
    assert event.context["credential"]["oidc"]["subject"].startswith("project_path:acme/fraud")


def test_a_refused_id_token_fails_the_job_and_registers_nothing(
    live_server, oidc_issuer, ci_account, tmp_path
):
    policy(oidc_issuer, ci_account, audience=live_server.url, conditions={"repository": "acme/other"})
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{oidc_issuer.url}/github/id-token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": GITHUB_REQUEST_TOKEN,
    }
    code, _, err = register(live_server, tmp_path, env)
    assert code == 2
    assert "HTTP 403 no-trust-policy" in err
    assert not AssetVersion.objects.exists()


def test_without_an_id_token_the_client_says_how_to_get_one(live_server, tmp_path):
    code, _, err = register(live_server, tmp_path, {})
    assert code == 2
    assert "id-token: write" in err and "id_tokens:" in err


def test_the_token_command_exchanges_once_for_the_whole_job(live_server, oidc_issuer, ci_account):
    policy(oidc_issuer, ci_account, audience=live_server.url)
    env = {"PATH": "/usr/bin", "REGISTRY_ID_TOKEN": oidc_issuer.token(**github_claims(), aud=live_server.url)}
    command = [sys.executable, str(CLIENT), "--url", live_server.url, "--oidc", "token"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.startswith("mgr_") and ApiToken.objects.get().hashed == ApiToken.hash(token)
    # The same ID token again (a second step of the job) is a replay: the job keeps the registry token.
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert again.returncode == 2 and "id-token-replayed" in again.stderr
