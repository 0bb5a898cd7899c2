"""A small world for promotion tests: one model, its reviewers, a requester, a production policy."""

import itertools

import pytest
from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from accounts.models import Scope, User
from accounts.services import token_create
from approvals.models import Policy
from core.source import Source
from registry.models import AssetKind, Stage, StagePointer
from tests.factories import AssetFactory, VersionFactory

_keys = itertools.count()


class World:
    def __init__(self):
        self.production = Stage.objects.get(name="production")
        self.staging = Stage.objects.get(name="staging")
        self.reviewers = Group.objects.create(name="reviewers")
        self.author = User.objects.create_user("author")
        self.asset = AssetFactory(kind=AssetKind.MODEL, name="fraud")
        self.v1 = VersionFactory(asset=self.asset, metrics={"auc": 0.90}, created_by=self.author)
        self.v2 = VersionFactory(asset=self.asset, metrics={"auc": 0.93}, created_by=self.author)
        self.v3 = VersionFactory(asset=self.asset, metrics={"auc": 0.95}, created_by=self.author)
        StagePointer.objects.create(
            asset=self.asset, stage=self.production, version=self.v1, updated_at="2026-01-01T00:00:00Z"
        )
        self.ci = User.objects.create_user("ci", is_service_account=True)
        assign_perm("registry.request_promotion_asset", self.ci, self.asset)
        self.r1, self.r2, self.r3 = (User.objects.create_user(f"r{i}") for i in (1, 2, 3))
        for reviewer in (self.r1, self.r2, self.r3):
            reviewer.groups.add(self.reviewers)
        assign_perm("registry.review_asset", self.reviewers, self.asset)
        self.manager = User.objects.create_user("mia")
        assign_perm("registry.manage_asset", self.manager, self.asset)
        self.outsider = User.objects.create_user("olly")
        self.policy = Policy.objects.create(
            asset=self.asset, kind=AssetKind.MODEL, stage=self.production, required_approvals=2
        )
        self.policy.reviewer_teams.set([self.reviewers])
        _, self.ci_token = token_create(
            actor=None,
            source=Source.cli(),
            account=self.ci,
            name="ci",
            scopes=[Scope.READ, Scope.WRITE, Scope.PROMOTE],
        )

    def client(self, user=None, token=None):
        client = APIClient()
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        elif user:
            client.force_authenticate(user)
        return client

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


@pytest.fixture
def world(db):
    return World()
