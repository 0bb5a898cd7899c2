"""The stand-alone CI client, run as a subprocess against a live server; and decision callbacks."""

import base64
import hashlib
import hmac
import http.server
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
