"""Every public service writes its audit event, in the same transaction as its change.

The services are found by walking the services modules (every public function that runs in its own
transaction), so a service added later without a row in SCENARIOS fails test_every_service_has_a_scenario.
"""

import datetime as dt
import importlib
import inspect
import pkgutil

import pytest
from django.apps import apps
from django.utils import timezone

import accounts.federation
import accounts.services
import approvals.services
import notifications.services
import registry.services
from accounts.models import Scope, User
from approvals.models import Policy, PromotionRequest
from core.source import Source
from registry.models import AssetKind, Relation, Stage
from registry.permissions import Role
from registry.services import VersionRef
from tests.factories import UserFactory
from tests.helpers import World

MODULES = [
    registry.services,
    accounts.services,
    accounts.federation,
    approvals.services,
    notifications.services,
]
SRC = Source.cli()


def service_modules():
    """MODULES, and the modules of those that are packages (approvals.services.promotions, ...)."""
    for module in MODULES:
        yield module
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            yield importlib.import_module(f"{module.__name__}.{info.name}")


def public_services():
    found = {}
    for module in service_modules():
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if (
                function.__module__ == module.__name__
                and not name.startswith("_")
                and hasattr(function, "__wrapped__")
            ):
                found[name] = function
    return found


def _pending(w):
    return approvals.services.promotion_request(
        actor=w.ci, source=SRC, asset=w.asset, version=w.v2, stage=w.production, justification="go"
    )


def _approved(w):
    Policy.objects.filter(pk=w.policy.pk).update(apply_on_approval=False, required_approvals=1)
    promotion = _pending(w)
    approvals.services.promotion_approve(actor=w.r1, source=SRC, promotion_id=promotion.pk)
    return promotion


def _due(w):
    promotion = _pending(w)
    PromotionRequest.objects.filter(pk=promotion.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    return promotion


def _trust(w):
    return accounts.federation.trust_policy_create(
        actor=None,
        source=SRC,
        name="ci-main",
        provider="github",
        audience="https://registry.example.test",
        conditions={"repository": "acme/fraud"},
        account=w.ci,
        scopes=["read"],
    )


S = registry.services
A = accounts.services
F = accounts.federation
P = approvals.services
# name → (call, the actions it records)
SCENARIOS = {
    "asset_create": (
        lambda w: S.asset_create(actor=w.admin, source=SRC, kind=AssetKind.MODEL, name="new"),
        ["asset.created"],
    ),
    "asset_update": (
        lambda w: S.asset_update(actor=w.admin, source=SRC, asset=w.asset, description="x"),
        ["asset.updated"],
    ),
    "asset_archive": (
        lambda w: S.asset_archive(actor=w.admin, source=SRC, asset=w.asset),
        ["asset.archived"],
    ),
    "version_register": (
        lambda w: S.version_register(
            actor=w.admin, source=SRC, asset=w.asset, data={"digest": "sha256:" + "e" * 64}
        ),
        ["version.created"],
    ),
    "version_register_named": (
        lambda w: S.version_register_named(
            actor=w.admin,
            source=SRC,
            kind=w.asset.kind,
            name=w.asset.name,
            data={"digest": "sha256:" + "f" * 64},
        ),
        ["version.created"],
    ),
    "version_update": (
        lambda w: S.version_update(actor=w.admin, source=SRC, version=w.v1, tags=["t"]),
        ["version.updated"],
    ),
    "evaluation_add": (
        lambda w: S.evaluation_add(actor=w.admin, source=SRC, version=w.v1, name="e", metrics={"auc": 0.5}),
        ["evaluation.added"],
    ),
    "lineage_add": (
        lambda w: S.lineage_add(
            actor=w.admin,
            source=SRC,
            child=w.v2,
            relation=Relation.DERIVED_FROM,
            parent_ref=VersionRef("model", "fraud", 1),
        ),
        ["lineage.added"],
    ),
    "stage_set": (
        lambda w: S.stage_set(actor=w.admin, source=SRC, asset=w.asset, stage=w.staging, version=w.v2),
        ["stage.set"],
    ),
    "service_account_create": (
        lambda w: A.service_account_create(actor=w.admin, source=SRC, name="ci-new"),
        ["account.created"],
    ),
    "token_create": (
        lambda w: A.token_create(actor=w.admin, source=SRC, account=w.ci, name="t", scopes=[Scope.READ]),
        ["token.created"],
    ),
    "token_revoke": (
        lambda w: A.token_revoke(actor=w.admin, source=SRC, token=w.ci.tokens.first()),
        ["token.revoked"],
    ),
    "grant_add": (
        lambda w: S.grant_add(actor=w.admin, source=SRC, asset=w.asset, principal=w.outsider, role=Role.VIEW),
        ["grant.added"],
    ),
    "grant_remove": (
        lambda w: S.grant_remove(
            actor=w.admin, source=SRC, asset=w.asset, principal=w.manager, role=Role.MANAGE
        ),
        ["grant.removed"],
    ),
    "team_member_add": (
        lambda w: A.team_member_add(actor=w.admin, source=SRC, team=w.reviewers, user=w.outsider),
        ["team.member_added"],
    ),
    "team_member_remove": (
        lambda w: A.team_member_remove(actor=w.admin, source=SRC, team=w.reviewers, user=w.r1),
        ["team.member_removed"],
    ),
    "user_update": (
        lambda w: A.user_update(
            actor=w.admin, source=SRC, user=w.outsider, global_role="admin", can_create_assets=True
        ),
        ["user.updated"],
    ),
    "login_record": (lambda w: A.login_record(user=w.r1, source=SRC), ["login.succeeded"]),
    "login_failed_record": (
        lambda w: A.login_failed_record(username="x", source=SRC, reason="invalid_login"),
        ["login.failed"],
    ),
    "logout_record": (lambda w: A.logout_record(user=w.r1, source=SRC), ["logout"]),
    "person_create": (
        lambda w: A.person_create(actor=w.admin, source=SRC, username="newbie", password="a-long-pass-9317"),
        ["account.created"],
    ),
    "user_set_password": (
        lambda w: A.user_set_password(actor=w.r1, source=SRC, user=w.r1, password="a-long-pass-9317"),
        ["account.password_changed"],
    ),
    "policy_create": (
        lambda w: P.policy_create(actor=w.admin, source=SRC, stage=w.staging, asset=w.asset),
        ["policy.created"],
    ),
    "policy_update": (
        lambda w: P.policy_update(actor=w.admin, source=SRC, policy=w.policy, expiry_hours=2),
        ["policy.updated"],
    ),
    "policy_delete": (
        lambda w: P.policy_delete(actor=w.admin, source=SRC, policy=w.policy),
        ["policy.deleted"],
    ),
    "promotion_request": (lambda w: _pending(w), ["promotion.requested"]),
    "promotion_approve": (
        lambda w: P.promotion_approve(actor=w.r1, source=SRC, promotion_id=w.pending.pk),
        ["promotion.approved"],
    ),
    "promotion_reject": (
        lambda w: P.promotion_reject(actor=w.r1, source=SRC, promotion_id=w.pending.pk, comment="no"),
        ["promotion.rejected"],
    ),
    "promotion_cancel": (
        lambda w: P.promotion_cancel(actor=w.ci, source=SRC, promotion_id=w.pending.pk),
        ["promotion.cancelled"],
    ),
    "promotion_apply": (
        lambda w: P.promotion_apply(actor=w.ci, source=SRC, promotion_id=w.approved.pk),
        ["stage.set", "promotion.applied"],
    ),
    "promotion_expire_if_due": (
        lambda w: P.promotion_expire_if_due(promotion_id=w.due.pk, source=SRC),
        ["promotion.expired"],
    ),
    "promotion_expire_due": (lambda w: P.promotion_expire_due(source=SRC), ["promotion.expired"]),
    "trust_policy_create": (
        lambda w: F.trust_policy_create(
            actor=w.admin,
            source=SRC,
            name="ci-other",
            provider="gitlab",
            audience="https://registry.example.test",
            conditions={"project_path": "acme/fraud", "ref_protected": "true"},
            account=w.ci,
            scopes=["read", "write"],
        ),
        ["trust_policy.created"],
    ),
    "trust_policy_update": (
        lambda w: F.trust_policy_update(actor=w.admin, source=SRC, policy=w.trust, scopes=["write"]),
        ["trust_policy.updated"],
    ),
    "trust_policy_delete": (
        lambda w: F.trust_policy_delete(actor=w.admin, source=SRC, policy=w.trust),
        ["trust_policy.deleted"],
    ),
    "sso_sign_in": (
        lambda w: F.sso_sign_in(
            source=SRC,
            claims={"iss": "https://idp.example.org", "sub": "00u1", "preferred_username": "sam"},
        ),
        ["account.created", "login.succeeded"],
    ),
    "notification_settings_update": (
        lambda w: notifications.services.notification_settings_update(
            actor=w.r1, source=SRC, choices={"decided": False}
        ),
        ["notifications.settings_updated"],
    ),
}
NEEDS = {
    "promotion_approve": "pending",
    "promotion_reject": "pending",
    "promotion_cancel": "pending",
    "promotion_apply": "approved",
    "promotion_expire_if_due": "due",
    "promotion_expire_due": "due",
    "trust_policy_update": "trust",
    "trust_policy_delete": "trust",
}
MAKERS = {"pending": _pending, "approved": _approved, "due": _due, "trust": _trust}


def test_every_service_has_a_scenario():
    assert set(public_services()) == set(SCENARIOS)


def _arrange(name):
    world = World()
    world.admin = UserFactory(username="root", global_role="admin")
    if name in NEEDS:
        setattr(world, NEEDS[name], MAKERS[NEEDS[name]](world))
    return world


def _counts():
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if not model._meta.proxy and model._meta.managed
    }


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_service_records_its_event(name):
    from audit.models import AuditEvent

    world = _arrange(name)
    call, expected = SCENARIOS[name]
    before = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    call(world)
    actions = list(AuditEvent.objects.filter(seq__gt=before).order_by("seq").values_list("action", flat=True))
    for action in expected:
        assert action in actions, (name, actions)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_service_changes_nothing_when_its_event_cannot_be_written(name, monkeypatch):
    """The event is part of the change: if recording fails, the whole change is rolled back."""
    world = _arrange(name)
    call, _ = SCENARIOS[name]
    before = _counts()
    fields_before = _snapshot()

    def broken(**kwargs):
        raise RuntimeError("the audit log is unavailable")

    for module in service_modules():
        if hasattr(module, "audit_record"):
            monkeypatch.setattr(module, "audit_record", broken)
    with pytest.raises(RuntimeError, match="audit log is unavailable"):
        call(world)
    assert _counts() == before
    assert _snapshot() == fields_before


def _snapshot():
    """The mutable columns of the governed rows, to prove updates were rolled back too."""
    from accounts.models import ApiToken, TrustPolicy
    from registry.models import Asset, AssetVersion

    return (
        list(Asset.objects.order_by("pk").values_list("description", "archived_at", "latest_version_number")),
        list(AssetVersion.objects.order_by("pk").values_list("tags")),
        list(PromotionRequest.objects.order_by("pk").values_list("status", "revision")),
        list(ApiToken.objects.order_by("pk").values_list("revoked_at")),
        list(Policy.objects.order_by("pk").values_list("expiry_hours")),
        list(TrustPolicy.objects.order_by("pk").values_list("scopes", "enabled")),
        list(Stage.objects.values_list("name")),
        list(
            User.objects.order_by("pk").values_list(
                "global_role", "is_active", "is_superuser", "is_staff", "password"
            )
        ),
        list(User.groups.through.objects.order_by("pk").values_list("user_id", "group_id")),
        list(User.user_permissions.through.objects.order_by("pk").values_list("user_id", "permission_id")),
    )
