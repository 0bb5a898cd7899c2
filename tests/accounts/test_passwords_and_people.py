"""Passwords and people: nobody sets another person's password, and every password set and every person
created is an audit event (the admin's forms, the password page, and the server's commands)."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from accounts.models import User
from accounts.services import person_create, user_set_password
from approvals.models import PromotionRequest
from audit.models import AuditEvent
from core.exceptions import Forbidden, InvalidInput
from core.source import Source
from registry.models import Asset, AssetKind
from registry.services import asset_create
from tests.factories import ServiceAccountFactory, UserFactory
from tests.helpers import World

pytestmark = pytest.mark.django_db
OLD, NEW = "reviewer-old-pass-8513", "admin-chosen-pass-2207"
SRC = Source.cli()


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


@pytest.fixture
def root():
    return UserFactory(
        username="root", password="root-pass-4419", global_role="admin", is_staff=True, is_superuser=True
    )


def signed_in(user, password) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": user.username, "password": password})
    assert response.status_code == 302, response.content
    return client


def test_an_admin_cannot_set_a_reviewers_password_and_approve_in_their_name(root):
    """Two approvals by one person: the admin requests, then would approve as a reviewer whose password
    they set in the admin. The password form refuses, so the reviewer's password stays theirs."""
    world = World()
    world.r1.set_password(OLD)
    world.r1.save()
    promotion = world.request(world.client(root)).json()
    admin = Client()
    admin.force_login(root)

    response = admin.post(
        f"/admin/accounts/user/{world.r1.pk}/password/",
        {"usable_password": "true", "password1": NEW, "password2": NEW, "set-password": ""},
    )

    assert response.status_code == 403
    world.r1.refresh_from_db()
    assert world.r1.check_password(OLD) and not world.r1.check_password(NEW)
    as_reviewer = Client()
    refused = as_reviewer.post("/accounts/login/", {"username": "r1", "password": NEW})
    assert refused.status_code == 200 and "_auth_user_id" not in as_reviewer.session
    approve = as_reviewer.post(f"/api/v1/promotions/{promotion['id']}/approve", {})
    assert approve.status_code in (401, 403)
    assert PromotionRequest.objects.get(pk=promotion["id"]).reviews.count() == 0
    assert events("account.password_changed") == []


def test_the_admin_cannot_disable_another_persons_password_either(root):
    person = UserFactory(username="pat", password=OLD)
    admin = Client()
    admin.force_login(root)
    response = admin.post(f"/admin/accounts/user/{person.pk}/password/", {"usable_password": "false"})
    assert response.status_code == 403
    person.refresh_from_db()
    assert person.check_password(OLD)


def test_the_admins_own_password_links_lead_to_the_audited_page(root):
    admin = Client()
    admin.force_login(root)
    own = admin.get(f"/admin/accounts/user/{root.pk}/password/")
    assert (own.status_code, own["Location"]) == (302, "/accounts/password/")
    site = admin.get("/admin/password_change/")
    assert (site.status_code, site["Location"]) == (302, "/accounts/password/")
    assert admin.get("/admin/accounts/user/999999/password/").status_code == 404


def test_a_person_changes_their_own_password_on_the_record():
    person = UserFactory(username="pat", password=OLD)
    other_session = signed_in(person, OLD)
    client = signed_in(person, OLD)

    response = client.post(
        "/accounts/password/", {"old_password": OLD, "new_password1": NEW, "new_password2": NEW}
    )

    assert (response.status_code, response["Location"]) == (302, "/accounts/password/")
    person.refresh_from_db()
    assert person.check_password(NEW)
    [event] = events("account.password_changed")
    assert (event.actor_id, event.target_id, event.source) == (person.pk, str(person.pk), "web")
    assert event.changes == {"user": "pat", "set_by": "self"}
    assert NEW not in str(event.changes) + str(event.context) and person.password not in str(event.changes)
    # This session stays signed in; the other one ends.
    assert client.get("/accounts/password/").status_code == 200
    assert other_session.get("/accounts/password/").status_code == 302


@pytest.mark.parametrize(
    ("old", "new1", "new2", "field"),
    [
        ("wrong-old-pass-1", NEW, NEW, "old_password"),
        (OLD, NEW, NEW + "x", "new_password2"),
        (OLD, "short", "short", "new_password2"),
    ],
)
def test_a_refused_password_change_changes_nothing(old, new1, new2, field):
    person = UserFactory(username="pat", password=OLD)
    client = signed_in(person, OLD)
    response = client.post(
        "/accounts/password/", {"old_password": old, "new_password1": new1, "new_password2": new2}
    )
    assert response.status_code == 200
    assert response.context["form"].errors.get(field)
    person.refresh_from_db()
    assert person.check_password(OLD)
    assert events("account.password_changed") == []


def test_the_password_page_needs_a_signed_in_person():
    response = Client().get("/accounts/password/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_only_the_person_or_the_server_sets_a_password(root):
    person = UserFactory(username="pat", password=OLD)
    with pytest.raises(Forbidden) as refused:
        user_set_password(actor=root, source=SRC, user=person, password=NEW)
    assert refused.value.type == "password-of-another"
    ci = ServiceAccountFactory(username="ci")
    with pytest.raises(InvalidInput) as service:
        user_set_password(actor=None, source=SRC, user=ci, password=NEW)
    with pytest.raises(InvalidInput) as weak:
        user_set_password(actor=person, source=SRC, user=person, password="password")
    assert [service.value.errors[0].field, weak.value.errors[0].field] == ["password", "password"]
    person.refresh_from_db()
    assert person.check_password(OLD)
    assert events("account.password_changed") == []


def test_changepassword_on_the_server_is_on_the_record(monkeypatch):
    person = UserFactory(username="pat", password=OLD)
    typed = iter(["password", "password", NEW, NEW])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))

    call_command("changepassword", "pat", stdout=StringIO(), stderr=StringIO())

    person.refresh_from_db()
    assert person.check_password(NEW)
    [event] = events("account.password_changed")
    assert (event.actor_id, event.actor_kind, event.source) == (None, "system", "cli")
    assert event.changes == {"user": "pat", "set_by": "server"}


def test_changepassword_refuses_a_service_account(monkeypatch):
    ServiceAccountFactory(username="ci")
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW)
    with pytest.raises(CommandError, match="service account"):
        call_command("changepassword", "ci", stdout=StringIO())
    assert events("account.password_changed") == []


def test_createsuperuser_creates_the_first_admin_on_the_record(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", NEW)
    call_command(
        "createsuperuser",
        "--noinput",
        "--username",
        "boss",
        "--email",
        "b@example.com",
        stdout=StringIO(),
    )
    boss = User.objects.get(username="boss")
    assert (boss.is_superuser, boss.is_staff, boss.is_registry_admin, boss.check_password(NEW)) == (
        True,
        True,
        True,
        True,
    )
    [event] = events("account.created")
    assert (event.actor_id, event.source, event.target_id) == (None, "cli", str(boss.pk))
    assert event.changes == {
        "after": {"service_account": False, "email": "b@example.com", "is_superuser": True, "password": "set"}
    }
    with pytest.raises(CommandError, match="already exists"):
        call_command("createsuperuser", "--noinput", "--username", "BOSS", stdout=StringIO())


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_admin_add_form_creates_a_person_on_the_record(root):
    """As in production: no test transaction around the admin's view (its service runs in its own)."""
    admin = Client()
    admin.force_login(root)
    response = admin.post(
        "/admin/accounts/user/add/",
        {
            "username": "newbie",
            "usable_password": "true",
            "password1": NEW,
            "password2": NEW,
            "_save": "Save",
        },
    )
    newbie = User.objects.get(username="newbie")
    assert (response.status_code, response["Location"]) == (302, f"/admin/accounts/user/{newbie.pk}/change/")
    assert newbie.check_password(NEW) and not newbie.is_superuser and not newbie.is_service_account
    [event] = events("account.created")
    assert (event.actor_id, event.source, event.target_id) == (root.pk, "web", str(newbie.pk))
    assert event.changes["after"]["password"] == "set"
    assert NEW not in str(event.changes) and newbie.password not in str(event.changes)


def test_the_admin_add_form_can_create_a_person_without_a_password(root):
    admin = Client()
    admin.force_login(root)
    response = admin.post(
        "/admin/accounts/user/add/", {"username": "later", "usable_password": "false", "_save": "Save"}
    )
    assert response.status_code == 302
    assert not User.objects.get(username="later").has_usable_password()
    [event] = events("account.created")
    assert (event.actor_id, event.changes["after"]["password"]) == (root.pk, "none")
    page = admin.get(f"/admin/accounts/user/{event.target_id}/change/")
    assert b"manage.py changepassword" in page.content


def test_the_admin_add_form_refuses_a_taken_name_and_records_nothing(root):
    UserFactory(username="newbie")
    admin = Client()
    admin.force_login(root)
    response = admin.post(
        "/admin/accounts/user/add/",
        {"username": "NewBie", "usable_password": "true", "password1": NEW, "password2": NEW},
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors.get("username")
    assert User.objects.filter(username__iexact="newbie").count() == 1
    assert events("account.created") == []


def test_person_create_is_for_admins_and_superusers_make_superusers(root):
    clerk = UserFactory(username="clerk")
    with pytest.raises(Forbidden):
        person_create(actor=clerk, source=SRC, username="x1")
    lesser = UserFactory(username="lesser", global_role="admin")
    with pytest.raises(Forbidden):
        person_create(actor=lesser, source=SRC, username="x2", is_superuser=True)
    with pytest.raises(InvalidInput) as bad:
        person_create(actor=root, source=SRC, username="no spaces allowed")
    assert bad.value.errors[0].field == "username"
    with pytest.raises(InvalidInput) as bad:
        person_create(actor=root, source=SRC, username="x4", email="not an address")
    assert bad.value.errors[0].field == "email"
    created = person_create(actor=lesser, source=SRC, username="x3")
    assert not created.has_usable_password()
    assert [e.changes["after"]["password"] for e in events("account.created")] == ["none"]


def test_a_teams_add_asset_permission_grants_nothing():
    """Only the account's own, audited flag lets a person create assets; a group permission (not on the
    record) does not, whether it was made before the admin became read-only or by a data migration."""
    team = Group.objects.create(name="builders")
    team.permissions.add(Permission.objects.get(content_type__app_label="registry", codename="add_asset"))
    member = UserFactory(username="bea")
    member.groups.add(team)

    with pytest.raises(Forbidden):
        asset_create(actor=member, source=SRC, kind=AssetKind.MODEL, name="sneaky")
    client = Client()
    client.force_login(member)
    response = client.post("/api/v1/models", {"name": "sneaky"}, content_type="application/json")
    assert response.status_code == 403
    assert not Asset.objects.filter(name="sneaky").exists()


def test_createsuperuser_asks_and_refuses_mismatched_or_weak_passwords(monkeypatch):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    answers = iter(["boss", "b@example.com"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW if prompt == "Password: " else "other")
    with pytest.raises(CommandError, match="do not match"):
        call_command("createsuperuser", stdout=StringIO())
    answers = iter(["boss", ""])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "password")
    with pytest.raises(CommandError, match="password"):
        call_command("createsuperuser", stdout=StringIO())
    assert not User.objects.filter(username="boss").exists() and events("account.created") == []
    answers = iter(["boss", ""])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW)
    call_command("createsuperuser", stdout=StringIO())
    assert User.objects.get(username="boss").check_password(NEW)
    assert [e.actor_id for e in events("account.created")] == [None]
