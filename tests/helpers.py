"""Helpers shared by test modules: the database in use, a chain check, concurrent runs, a promotion world.

Test modules import from here (and from tests.factories), never from each other or from a conftest."""

import http.server
import itertools
import json
import threading

import rfc8785
from django.conf import settings
from django.db import close_old_connections, connection
from rest_framework.test import APIClient

IS_POSTGRES = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def api_client(user=None, token=None) -> APIClient:
    """An API client acting as user (forced) or presenting a bearer token; anonymous without either."""
    client = APIClient()
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    elif user is not None:
        client.force_authenticate(user)
    return client


def verify_chain():
    """Recompute every leaf and chain hash from the stored bodies; return the first bad seq or None."""
    from audit.canonical import GENESIS_CHAIN, chain_hash, leaf_hash
    from audit.models import AuditEvent

    previous = GENESIS_CHAIN
    for expected_seq, event in enumerate(AuditEvent.objects.order_by("seq"), start=1):
        body = bytes(event.body)
        if event.seq != expected_seq or json.loads(body)["seq"] != expected_seq:
            return expected_seq
        if rfc8785.dumps(json.loads(body)) != body or leaf_hash(body) != bytes(event.leaf_hash):
            return event.seq
        previous = chain_hash(previous, leaf_hash(body))
        if previous != bytes(event.chain_hash):
            return event.seq
    return None


def run_at_once(target, count):
    """Run target(0) … target(count - 1) in threads released together; return the exceptions raised."""
    barrier = threading.Barrier(count)
    errors = []

    def worker(index):
        try:
            barrier.wait()
            target(index)
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    close_old_connections()
    return errors


_keys = itertools.count()


class World:
    """A small world for promotion tests: one model, its reviewers, a requester, a production policy."""

    def __init__(self):
        from guardian.shortcuts import assign_perm

        from accounts.models import Scope
        from accounts.services import token_create
        from core.source import Source
        from registry.models import AssetKind, Stage, StagePointer
        from tests.factories import (
            AssetFactory,
            PolicyFactory,
            ServiceAccountFactory,
            TeamFactory,
            UserFactory,
            VersionFactory,
        )

        self.production = Stage.objects.get(name="production")
        self.staging = Stage.objects.get(name="staging")
        self.reviewers = TeamFactory(name="reviewers")
        self.author = UserFactory(username="author")
        self.asset = AssetFactory(kind=AssetKind.MODEL, name="fraud")
        self.v1 = VersionFactory(asset=self.asset, metrics={"auc": 0.90}, created_by=self.author)
        self.v2 = VersionFactory(asset=self.asset, metrics={"auc": 0.93}, created_by=self.author)
        self.v3 = VersionFactory(asset=self.asset, metrics={"auc": 0.95}, created_by=self.author)
        StagePointer.objects.create(
            asset=self.asset, stage=self.production, version=self.v1, updated_at="2026-01-01T00:00:00Z"
        )
        self.ci = ServiceAccountFactory(username="ci")
        assign_perm("registry.request_promotion_asset", self.ci, self.asset)
        self.r1, self.r2, self.r3 = (UserFactory(username=f"r{i}") for i in (1, 2, 3))
        for reviewer in (self.r1, self.r2, self.r3):
            reviewer.groups.add(self.reviewers)
        assign_perm("registry.review_asset", self.reviewers, self.asset)
        self.manager = UserFactory(username="mia")
        assign_perm("registry.manage_asset", self.manager, self.asset)
        self.outsider = UserFactory(username="olly")
        self.policy = PolicyFactory(asset=self.asset, stage=self.production, required_approvals=2)
        self.policy.reviewer_teams.set([self.reviewers])
        _, self.ci_token = token_create(
            actor=None,
            source=Source.cli(),
            account=self.ci,
            name="ci",
            scopes=[Scope.READ, Scope.WRITE, Scope.PROMOTE],
        )

    def client(self, user=None, token=None):
        return api_client(user, token)

    def request(self, client=None, version=2, stage="production", key=None, **extra):
        client = client or self.client(token=self.ci_token)
        body = {
            "kind": "model",
            "name": "fraud",
            "version": version,
            "stage": stage,
            "justification": "better auc",
            **extra,
        }
        return client.post(
            "/api/v1/promotions", body, format="json", HTTP_IDEMPOTENCY_KEY=key or f"key-{next(_keys)}"
        )

    def act(self, user, promotion_id, action, **body):
        return self.client(user).post(f"/api/v1/promotions/{promotion_id}/{action}", body, format="json")


class Receiver:
    """A webhook receiver on 127.0.0.1 (ephemeral port): records what arrives and answers with the given
    status codes in turn (then the last one again), with a Location header or after `hold` is set if asked."""

    def __init__(self, *statuses: int, location: str | None = None, hold: threading.Event | None = None):
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.arrived = threading.Event()
        self.answered = threading.Event()
        receiver, answers = self, list(statuses or (204,))

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.command, self.path, dict(self.headers.items()), body))
                receiver.arrived.set()
                if hold is not None:
                    hold.wait(10)
                self.send_response(answers.pop(0) if len(answers) > 1 else answers[0])
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.answered.set()

            do_POST = do_GET = do_PUT = handle_one

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def deliveries(self) -> list[tuple[dict, bytes]]:
        """The requests as (headers with lower-case names, body)."""
        return [({k.lower(): v for k, v in headers.items()}, body) for _, _, headers, body in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
