"""The stand-alone CI client, run as a subprocess against a live server; and decision callbacks."""

import base64
import hashlib
import hmac
import http.server
import importlib.util
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from approvals.models import PromotionRequest
from approvals.services import promotion_approve, promotion_reject
from approvals.tasks import sign
from core.source import Source
from registry.models import AssetVersion

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "registry_ci.py"
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def fast_polls(settings):
    settings.PROMOTION_POLL_SECONDS = 1


def run(live_server, world, *args, env=None):
    command = [sys.executable, str(CLIENT), "--url", live_server.url, "--token", world.ci_token, *args]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin", **(env or {})},
    )


def finish(process, timeout=30):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def promote_args(*extra):
    return [
        "promote",
        "--name",
        "fraud",
        "--version",
        "2",
        "--stage",
        "production",
        "--justification",
        "ci",
        "--max-interval",
        "1",
        *extra,
    ]


def wait_for_request():
    for _ in range(100):
        promotion = PromotionRequest.objects.first()
        if promotion is not None:
            return promotion
        time.sleep(0.05)
    raise AssertionError("the client made no request")


def test_register_from_a_json_file(live_server, world, tmp_path):
    body = tmp_path / "version.json"
    body.write_text(json.dumps({"digest": "sha256:" + "c" * 64, "metrics": {"auc": 0.97}}))
    world_grant_contribute(world)
    code, out, err = finish(run(live_server, world, "register", "--name", "fraud", "--file", str(body)))
    assert code == 0, err
    assert json.loads(out)["version"] == 4
    assert AssetVersion.objects.get(asset=world.asset, number=4).metrics == {"auc": 0.97}


def world_grant_contribute(world):
    from guardian.shortcuts import assign_perm

    assign_perm("registry.contribute_asset", world.ci, world.asset)


def test_promote_and_wait_until_applied(live_server, world, fast_polls):
    process = run(
        live_server,
        world,
        *promote_args("--wait", "30"),
        env={"GITHUB_ACTIONS": "true", "GITHUB_SHA": "a" * 40},
    )
    promotion = wait_for_request()
    assert promotion.ci["commit"] == "a" * 40
    promotion_approve(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk)
    promotion_approve(actor=world.r2, source=Source.cli(), promotion_id=promotion.pk)
    code, out, err = finish(process)
    assert code == 0, err
    assert json.loads(out)["status"] == "applied"
    # The log names the page where people review the request, and the API address polled, each labelled.
    assert f"registry-ci: review page: {live_server.url}/promotions/{promotion.pk}/\n" in err
    assert f"registry-ci: API: {live_server.url}/api/v1/promotions/{promotion.pk}\n" in err


def test_promote_rejected_exits_1(live_server, world, fast_polls):
    process = run(live_server, world, *promote_args("--wait", "30"))
    promotion = wait_for_request()
    promotion_reject(actor=world.r1, source=Source.cli(), promotion_id=promotion.pk, comment="no")
    code, out, _ = finish(process)
    assert code == 1
    assert json.loads(out)["status"] == "rejected"


def test_promote_times_out_with_3(live_server, world, fast_polls):
    code, out, _ = finish(run(live_server, world, *promote_args("--wait", "2")))
    assert code == 3
    assert json.loads(out)["status"] == "pending"


def test_usage_and_server_errors_exit_2(live_server, world):
    assert finish(run(live_server, world, "promote", "--name", "fraud"))[0] == 2
    code, _, err = finish(run(live_server, world, *promote_args()[:-2], "--stage", "nowhere"))
    assert code == 2
    assert "invalid-input" in err


# Callbacks ----------------------------------------------------------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((self.headers, body))  # header names are case-insensitive here
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_decision_is_called_back_with_a_signature(world, settings):
    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]  # a loopback receiver must be allowed by name
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Receiver.received.clear()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hook"
        response = world.request(callback_url=url)
        assert response.status_code == 201, response.content
        promotion_reject(
            actor=world.r1, source=Source.cli(), promotion_id=response.json()["id"], comment="no"
        )
        for _ in range(50):
            if Receiver.received:
                break
            time.sleep(0.05)
    finally:
        server.shutdown()
    [(headers, body)] = Receiver.received
    assert json.loads(body)["type"] == "promotion.rejected"
    expected = sign(settings.WEBHOOK_SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    assert headers["webhook-signature"] == expected
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    digest = hmac.new(settings.WEBHOOK_SECRET.encode(), signed, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def test_a_refused_poll_exits_2_at_once(live_server, world, fast_polls):
    from accounts.models import ApiToken
    from accounts.services import token_revoke

    process = run(live_server, world, *promote_args("--wait", "60"))
    wait_for_request()
    for token in ApiToken.objects.filter(account=world.ci):
        token_revoke(actor=None, source=Source.cli(), token=token)
    started = time.monotonic()
    code, _, err = finish(process)
    assert code == 2 and "token-revoked" in err
    assert time.monotonic() - started < 20


# Redirects: the token stays with the registry's origin -------------------------------------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    """One loopback server: answers `redirect` (status, location) to the first path, JSON to the others."""

    redirect: tuple[int, str] | None = None
    seen: list

    def answer(self):
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.redirect and self.path.startswith("/api/v1/"):
            self.send_response(self.redirect[0])
            self.send_header("Location", self.redirect[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps({"version": 4, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_servers():
    """Start servers on 127.0.0.1, each on its own port (so each its own origin)."""
    started = []

    def start(redirect=None):
        handler = type("Handler", (Recorder,), {"redirect": redirect, "seen": []})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return f"http://127.0.0.1:{server.server_port}", handler.seen

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def load_client():
    spec = importlib.util.spec_from_file_location("registry_ci", CLIENT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db(transaction=False)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_gets_no_token(loopback_servers, status):
    other, other_seen = loopback_servers()
    registry_url, registry_seen = loopback_servers(redirect=(status, f"{other}/collect"))
    client = load_client()
    with pytest.raises(client.ClientError, match="redirected to another origin"):
        client.Registry(registry_url, "mgr_secret-token").call("GET", "/api/v1/models")
    assert registry_seen == [("GET", "/api/v1/models", "Bearer mgr_secret-token")]
    assert other_seen == []  # refused: the other origin is never contacted, so never sees the token


@pytest.mark.django_db(transaction=False)
def test_the_register_command_refuses_a_cross_origin_redirect(loopback_servers, tmp_path):
    other, other_seen = loopback_servers()
    registry_url, _ = loopback_servers(redirect=(302, f"{other}/collect"))
    body = tmp_path / "version.json"
    body.write_text(json.dumps({"digest": "sha256:" + "c" * 64}))
    command = [sys.executable, str(CLIENT), "--url", registry_url, "--token", "mgr_secret-token"]
    done = subprocess.run(
        [*command, "register", "--name", "fraud", "--file", str(body)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin"},
    )
    assert done.returncode == 2
    assert "redirected to another origin" in done.stderr
    assert other_seen == []


@pytest.mark.django_db(transaction=False)
def test_a_redirect_within_the_origin_keeps_the_token(loopback_servers):
    registry_url, seen = loopback_servers(redirect=(307, "/moved/models"))
    client = load_client()
    status, _, body = client.Registry(registry_url, "mgr_secret-token").call("GET", "/api/v1/models")
    assert (status, body["path"]) == (200, "/moved/models")
    assert [auth for _, _, auth in seen] == ["Bearer mgr_secret-token"] * 2
