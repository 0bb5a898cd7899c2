"""Grants, service accounts, management commands, and browser sign-in with its rate limit."""

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import CommandError, call_command

from accounts.models import User
from accounts.services import service_account_create
from audit.models import AuditEvent
from core.exceptions import Conflict, Forbidden, InvalidInput
from core.source import Source
from registry.models import AssetKind
from registry.permissions import Role, effective_roles, granted_roles
from registry.services import asset_create, grant_add, grant_remove
from tests.factories import AssetFactory, ServiceAccountFactory, UserFactory

pytestmark = pytest.mark.django_db
SRC = Source.cli()


@pytest.fixture
def manager():
    return UserFactory(username="mia")


@pytest.fixture
def asset(manager):
    from guardian.shortcuts import assign_perm

    asset = AssetFactory(name="fraud")
    assign_perm("registry.manage_asset", manager, asset)
    return asset


def events():
    return list(AuditEvent.objects.order_by("seq").values_list("action", "changes"))


def test_grant_and_revoke_each_write_one_event(manager, asset):
    bob = UserFactory(username="bob")
    grant_add(actor=manager, source=SRC, asset=asset, principal=bob, role=Role.REVIEW)
    assert granted_roles(bob, asset) == {Role.REVIEW}
    grant_remove(actor=manager, source=SRC, asset=asset, principal=bob, role=Role.REVIEW)
    assert granted_roles(bob, asset) == set()
    assert events() == [
        ("grant.added", {"principal": "user:bob", "role": "review"}),
        ("grant.removed", {"principal": "user:bob", "role": "review"}),
    ]
    with pytest.raises(Conflict):
        grant_remove(actor=manager, source=SRC, asset=asset, principal=bob, role=Role.REVIEW)


def test_team_grants_reach_members(manager, asset):
    team = Group.objects.create(name="reviewers")
    bob = UserFactory(username="bob")
    bob.groups.add(team)
    grant_add(actor=manager, source=SRC, asset=asset, principal=team, role=Role.REVIEW)
    assert Role.REVIEW in effective_roles(bob, asset)
    with pytest.raises(Conflict):
        grant_add(actor=manager, source=SRC, asset=asset, principal=team, role=Role.REVIEW)


def test_only_managers_grant(asset):
    bob = UserFactory(username="bob")
    with pytest.raises(Forbidden):
        grant_add(actor=bob, source=SRC, asset=asset, principal=bob, role=Role.MANAGE)
    assert not AuditEvent.objects.exists()


def test_service_accounts_never_get_review(manager, asset):
    ci = ServiceAccountFactory(username="ci")
    with pytest.raises(InvalidInput) as excinfo:
        grant_add(actor=manager, source=SRC, asset=asset, principal=ci, role=Role.REVIEW)
    assert excinfo.value.type == "service-account-cannot-review"


def test_admin_role_never_implies_review():
    admin = UserFactory(username="root", global_role="admin", is_superuser=True)
    asset = AssetFactory()
    assert Role.REVIEW not in effective_roles(admin, asset)
    assert Role.MANAGE in effective_roles(admin, asset)


def test_creator_manages_and_team_contributes():
    from django.contrib.auth.models import Permission

    owner = UserFactory(username="olga")
    owner.user_permissions.add(Permission.objects.get(codename="add_asset"))
    owner = User.objects.get(pk=owner.pk)
    team = Group.objects.create(name="ml")
    asset = asset_create(actor=owner, source=SRC, kind=AssetKind.MODEL, name="new", team=team)
    assert granted_roles(owner, asset) == {Role.MANAGE}
    assert asset.assetgroupobjectpermission_set.get().permission.codename == "contribute_asset"
    assert AuditEvent.objects.get().changes["grants"] == [
        {"principal": "user:olga", "role": "manage"},
        {"principal": "team:ml", "role": "contribute"},
    ]


def test_auditor_changes_nothing(auditor):
    asset = AssetFactory()
    assert effective_roles(auditor, asset) == {Role.VIEW}
    with pytest.raises(Forbidden):
        asset_create(actor=auditor, source=SRC, kind=AssetKind.MODEL, name="x")


def test_service_account_create_and_commands(capsys, admin):
    ci = service_account_create(actor=admin, source=SRC, name="ci-one")
    assert ci.is_service_account and not ci.has_usable_password()
    with pytest.raises(Conflict):
        service_account_create(actor=admin, source=SRC, name="ci-one")
    call_command("create_service_account", "ci-two", "--team", "platform")
    assert User.objects.get(username="ci-two").groups.get().name == "platform"
    AssetFactory(name="fraud")
    call_command("grant", "ci-two", "contribute", "model/fraud")
    call_command("grant", "platform", "view", "model/fraud")
    assert "Granted view on model/fraud to platform." in capsys.readouterr().out
    call_command("grant", "platform", "view", "model/fraud", "--revoke")
    with pytest.raises(CommandError):
        call_command("grant", "nobody", "view", "model/fraud")
    with pytest.raises(CommandError):
        call_command("grant", "ci-two", "view", "fraud")
    assert [action for action, _ in events()] == [
        "account.created",
        "account.created",
        "grant.added",
        "grant.added",
        "grant.removed",
    ]


# Browser sign-in ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()


def test_sign_in_and_out_are_audited(client):
    UserFactory(username="ann", password="correct-horse-battery")
    response = client.post("/accounts/login/", {"username": "ann", "password": "correct-horse-battery"})
    assert response.status_code == 302
    client.post("/accounts/logout/")
    assert [action for action, _ in events()] == ["login.succeeded", "logout"]


def test_failed_sign_ins_are_audited_and_rate_limited(client, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    UserFactory(username="ann", password="correct-horse-battery")
    for _ in range(3):
        assert client.post("/accounts/login/", {"username": "ann", "password": "wrong"}).status_code == 200
    locked = client.post("/accounts/login/", {"username": "ann", "password": "correct-horse-battery"})
    assert locked.status_code == 429
    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in client.session
    # The third failure engages both locks (name and address); the refused attempt writes nothing more.
    assert [(action, changes.get("reason") or changes["scope"]) for action, changes in events()] == [
        ("login.failed", "invalid_login"),
        ("login.failed", "invalid_login"),
        ("login.failed", "invalid_login"),
        ("login.locked", "address"),
        ("login.locked", "username"),
    ]


def test_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'<label for="id_username">' in response.content
