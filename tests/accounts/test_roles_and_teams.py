"""Who may act is decided on the record: team memberships, global roles and account flags change only through
audited services (API, access pages), never silently in the Django admin; auditors hold no asset role."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from accounts.models import GlobalRole, Scope, User
from accounts.permissions import ADMINS, can_ever_review, is_admin, is_auditor
from accounts.services import team_member_add, team_member_remove, token_create, user_update
from approvals.selectors import promotion_inbox_for_user
from audit.models import AuditEvent
from core.exceptions import Conflict, Forbidden, InvalidInput
from core.source import Source
from registry.permissions import Role, can_create_assets, effective_roles, granted_roles
from registry.services import grant_add
from tests.factories import UserFactory, digest_for
from tests.helpers import World, api_client

pytestmark = pytest.mark.django_db
SRC = Source.cli()


@pytest.fixture
def world():
    world = World()
    world.admin = UserFactory(
        username="root", password="root-password", global_role="admin", is_staff=True, is_superuser=True
    )
    world.auditor = UserFactory(username="audrey", global_role="auditor")
    return world


def new_events(since: int) -> list[tuple[str, str, dict]]:
    rows = AuditEvent.objects.filter(seq__gt=since).order_by("seq")
    return list(rows.values_list("action", "actor_repr", "changes"))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def reviewers_of(world) -> set[str]:
    return set(world.reviewers.user_set.values_list("username", flat=True))


# The Django admin cannot change who may act --------------------------------------------------------------


def admin_form(user: User, **changes) -> dict:
    """The user change form of the Django admin as a browser would post it, with changes."""
    data = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "global_role": user.global_role,
        "_save": "Save",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_an_admin_cannot_join_reviewers_through_the_django_admin(client, world):
    """An admin added themself to reviewers in the Django admin and approved, with no event for the join."""
    client.force_login(world.admin)
    before = last_seq()
    response = client.post(
        f"/admin/accounts/user/{world.admin.pk}/change/", admin_form(world.admin, groups=[world.reviewers.pk])
    )
    assert response.status_code == 302, response.content  # the form was accepted ...
    # ... and the membership either did not change, or the change is on the record.
    joined = world.admin.groups.filter(pk=world.reviewers.pk).exists()
    recorded = [event for event in new_events(before) if event[0] == "team.member_added"]
    assert not joined or recorded
    assert "root" not in reviewers_of(world)


@pytest.mark.parametrize(
    ("field", "value", "read"),
    [
        ("global_role", "admin", lambda u: u.global_role),
        ("is_superuser", "on", lambda u: u.is_superuser),
        ("is_staff", "on", lambda u: u.is_staff),
        ("is_active", None, lambda u: u.is_active),
        ("user_permissions", "add_asset", lambda u: u.has_perm("registry.add_asset")),
        ("is_service_account", "on", lambda u: u.is_service_account),
    ],
)
def test_the_django_admin_changes_no_role_or_flag(client, world, field, value, read):
    client.force_login(world.admin)
    person = world.outsider
    before_value, before_seq = read(person), last_seq()
    if value == "add_asset":
        value = [Permission.objects.get(codename="add_asset").pk]
    form = admin_form(person, **{"is_staff": None, "is_superuser": None, field: value})
    response = client.post(f"/admin/accounts/user/{person.pk}/change/", form)
    assert response.status_code == 302, response.content
    person = User.objects.get(pk=person.pk)
    assert read(person) == before_value
    assert new_events(before_seq) == []


def test_the_group_admin_changes_no_permission_and_deletes_nothing(client, world):
    client.force_login(world.admin)
    add_asset = Permission.objects.get(codename="add_asset")
    url = f"/admin/auth/group/{world.reviewers.pk}/change/"
    response = client.post(url, {"name": "renamed", "permissions": [add_asset.pk], "_save": "Save"})
    assert response.status_code == 302, response.content
    team = Group.objects.get(pk=world.reviewers.pk)
    assert (team.name, list(team.permissions.all())) == ("reviewers", [])
    assert client.post(f"/admin/auth/group/{team.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.post(f"/admin/accounts/user/{world.r1.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Group.objects.filter(pk=team.pk).exists() and User.objects.filter(pk=world.r1.pk).exists()


def test_the_group_admin_still_creates_an_empty_team(client, world):
    client.force_login(world.admin)
    response = client.post("/admin/auth/group/add/", {"name": "new-team", "_save": "Save"})
    assert response.status_code == 302, response.content
    assert Group.objects.get(name="new-team").user_set.count() == 0


def test_the_django_admin_still_adds_a_person_without_any_role(client, world):
    client.force_login(world.admin)
    form = {
        "username": "newbie",
        "usable_password": "true",
        "password1": "a-Long-pass-99",
        "password2": "a-Long-pass-99",
    }
    response = client.post("/admin/accounts/user/add/", {**form, "_save": "Save"})
    assert response.status_code == 302, response.content
    newbie = User.objects.get(username="newbie")
    assert (newbie.global_role, newbie.is_staff, newbie.is_superuser, list(newbie.groups.all())) == (
        "",
        False,
        False,
        [],
    )


def test_no_permission_or_grant_table_is_editable_in_the_django_admin():
    from django.contrib import admin
    from django.contrib.contenttypes.models import ContentType

    from registry.models import AssetGroupObjectPermission, AssetUserObjectPermission

    for model in (Permission, ContentType, AssetUserObjectPermission, AssetGroupObjectPermission):
        assert not admin.site.is_registered(model), model


# Team membership -------------------------------------------------------------------------------------------


def test_joining_a_team_is_an_event_with_before_and_after(world):
    before = last_seq()
    team_member_add(actor=world.admin, source=SRC, team=world.reviewers, user=world.admin)
    team_member_remove(actor=world.admin, source=SRC, team=world.reviewers, user=world.admin)
    added, removed = new_events(before)
    assert added == (
        "team.member_added",
        "root",
        {
            "team": "reviewers",
            "user": "root",
            "service_account": False,
            "before": {"teams": []},
            "after": {"teams": ["reviewers"]},
        },
    )
    assert removed[0] == "team.member_removed"
    assert (removed[2]["before"], removed[2]["after"]) == ({"teams": ["reviewers"]}, {"teams": []})


def test_membership_changes_are_for_admins_and_not_repeated(world):
    with pytest.raises(Forbidden):
        team_member_add(actor=world.manager, source=SRC, team=world.reviewers, user=world.manager)
    with pytest.raises(Forbidden):
        team_member_add(actor=world.auditor, source=SRC, team=world.reviewers, user=world.outsider)
    with pytest.raises(Conflict) as exc:
        team_member_add(actor=world.admin, source=SRC, team=world.reviewers, user=world.r1)
    assert exc.value.type == "already-a-member"
    with pytest.raises(Conflict) as exc:
        team_member_remove(actor=world.admin, source=SRC, team=world.reviewers, user=world.outsider)
    assert exc.value.type == "not-a-member"
    assert reviewers_of(world) == {"r1", "r2", "r3"}


def test_an_admin_who_joins_reviewers_and_approves_leaves_both_on_the_record(world):
    """The scenario of the finding, through the API: the join is an event before the approval."""
    world.r1.groups.remove(world.reviewers)
    promotion = world.request().json()
    admin = api_client(world.admin)
    before = last_seq()
    response = admin.post("/api/v1/teams/reviewers/members", {"user": "root"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"user": "root", "service_account": False, "active": True}
    assert admin.post(f"/api/v1/promotions/{promotion['id']}/approve", {}, format="json").status_code == 200
    actions = [(action, actor) for action, actor, _ in new_events(before)]
    assert actions[:2] == [("team.member_added", "root"), ("promotion.approved", "root")]


def test_team_member_routes(world):
    admin, auditor, outsider = (api_client(u) for u in (world.admin, world.auditor, world.outsider))
    members = "/api/v1/teams/reviewers/members"
    assert [m["user"] for m in admin.get(members).json()] == ["r1", "r2", "r3"]
    assert auditor.get(members).status_code == 200
    assert outsider.get(members).status_code == 403
    assert outsider.get("/api/v1/teams/nowhere/members").status_code == 403  # no hint whether it exists
    assert admin.get("/api/v1/teams/nowhere/members").status_code == 404
    before = last_seq()
    refused = admin.post(members, {"user": "nobody"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"field": "user", "message": "no account named 'nobody'"}]
    assert (
        admin.post(members, {"user": "olly", "role": "x"}, format="json").json()["errors"][0]["field"]
        == "role"
    )
    assert admin.post(members, {"user": "r1"}, format="json").json()["type"] == "already-a-member"
    assert auditor.post(members, {"user": "olly"}, format="json").status_code == 403
    # The right comes before the lookup: a refusal never tells whether the account exists.
    assert auditor.post(members, {"user": "nobody"}, format="json").status_code == 403
    assert auditor.delete(f"{members}/nobody").status_code == 403
    assert auditor.patch("/api/v1/users/nobody", {"is_active": False}, format="json").status_code == 403
    assert outsider.delete(f"{members}/r1").status_code == 403
    assert admin.delete(f"{members}/nobody").status_code == 404
    assert admin.delete(f"{members}/olly").json()["type"] == "not-a-member"
    assert new_events(before) == []
    assert admin.delete(f"{members}/r1").status_code == 204
    assert reviewers_of(world) == {"r2", "r3"}
    assert [event[0] for event in new_events(before)] == ["team.member_removed"]


def test_a_service_account_may_join_reviewers_and_still_never_reviews(world):
    team_member_add(actor=world.admin, source=SRC, team=world.reviewers, user=world.ci)
    assert Role.REVIEW in granted_roles(world.ci, world.asset)  # the team grant reaches it ...
    assert not can_ever_review(world.ci)  # ... and review is refused all the same
    promotion = world.request().json()
    response = world.client(token=world.ci_token).post(f"/api/v1/promotions/{promotion['id']}/approve", {})
    assert response.status_code == 403


# Global roles and account flags ----------------------------------------------------------------------------


def test_user_update_records_before_and_after_of_what_changed(world):
    before = last_seq()
    user_update(
        actor=world.admin,
        source=SRC,
        user=world.outsider,
        global_role="admin",
        is_staff=True,
        can_create_assets=True,
        is_active=True,  # unchanged: not in the event
    )
    [(action, actor, changes)] = new_events(before)
    assert (action, actor) == ("user.updated", "root")
    assert changes == {
        "user": "olly",
        "service_account": False,
        "before": {"global_role": "none", "is_staff": False, "can_create_assets": False},
        "after": {"global_role": "admin", "is_staff": True, "can_create_assets": True},
    }
    olly = User.objects.get(username="olly")
    assert (olly.global_role, olly.is_staff, is_admin(olly)) == ("admin", True, True)
    assert olly.has_perm("registry.add_asset")
    # Nothing to change: the account as it is, and no event.
    user_update(actor=world.admin, source=SRC, user=olly, global_role="admin", is_active=True)
    assert len(new_events(before)) == 1
    user_update(actor=world.admin, source=SRC, user=olly, global_role="none", can_create_assets=False)
    olly = User.objects.get(username="olly")
    assert (olly.global_role, can_create_assets(olly)) == ("", False)


@pytest.mark.parametrize(
    ("fields", "field", "type_"),
    [
        ({"global_role": "root"}, "global_role", "invalid-input"),
        ({"global_role": ""}, "global_role", "invalid-input"),
        ({"is_active": "yes"}, "is_active", "invalid-input"),
        ({"username": "x"}, "username", "invalid-input"),
    ],
)
def test_user_update_names_the_bad_field(world, fields, field, type_):
    with pytest.raises(InvalidInput) as exc:
        user_update(actor=world.admin, source=SRC, user=world.outsider, **fields)
    assert (exc.value.errors[0].field, exc.value.type) == (field, type_)


def test_only_admins_change_roles_and_only_superusers_superuser_status(world):
    for actor in (world.manager, world.auditor, world.outsider):
        with pytest.raises(Forbidden):
            user_update(actor=actor, source=SRC, user=actor, global_role="admin")
    plain_admin = UserFactory(username="ada", global_role="admin")
    with pytest.raises(Forbidden):
        user_update(actor=plain_admin, source=SRC, user=plain_admin, is_superuser=True)
    user_update(actor=world.admin, source=SRC, user=plain_admin, is_superuser=True)
    assert User.objects.get(username="ada").is_superuser


def test_the_last_active_admin_cannot_step_down(world):
    world.admin.is_superuser = False
    world.admin.save()
    for change in ({"global_role": "none"}, {"is_active": False}, {"global_role": "auditor"}):
        with pytest.raises(Conflict) as exc:
            user_update(actor=world.admin, source=SRC, user=world.admin, **change)
        assert exc.value.type == "last-admin"
    assert is_admin(User.objects.get(pk=world.admin.pk))
    # With a second admin, either may step down.
    user_update(actor=world.admin, source=SRC, user=world.outsider, global_role="admin")
    user_update(actor=world.admin, source=SRC, user=world.admin, is_active=False)
    assert not User.objects.get(pk=world.admin.pk).is_active


def test_a_service_account_holds_no_global_role(world):
    for field, value in [("global_role", "admin"), ("global_role", "auditor"), ("is_staff", True)]:
        with pytest.raises(InvalidInput) as exc:
            user_update(actor=world.admin, source=SRC, user=world.ci, **{field: value})
        assert (exc.value.errors[0].field, exc.value.type) == (
            field,
            "service-account-cannot-hold-global-role",
        )
    user_update(actor=world.admin, source=SRC, user=world.ci, can_create_assets=True, is_active=False)


def test_an_auditor_is_never_an_admin_and_creates_nothing(world):
    for fields, field in [
        ({"is_superuser": True}, "is_superuser"),
        ({"can_create_assets": True}, "can_create_assets"),
    ]:
        with pytest.raises(InvalidInput) as exc:
            user_update(actor=world.admin, source=SRC, user=world.auditor, **fields)
        assert (exc.value.errors[0].field, exc.value.type) == (field, "auditor-cannot-write")
    with pytest.raises(InvalidInput) as exc:
        user_update(actor=world.admin, source=SRC, user=world.admin, global_role="auditor")
    assert exc.value.errors[0].field == "global_role"  # a superuser cannot become an auditor
    # Someone holding a grant cannot become an auditor until the grant is revoked.
    with pytest.raises(InvalidInput) as exc:
        user_update(actor=world.admin, source=SRC, user=world.manager, global_role="auditor")
    assert (exc.value.errors[0].field, exc.value.type) == ("global_role", "auditor-cannot-hold-role")
    # An account that is superuser and auditor (made around the services) is an auditor only.
    both = UserFactory(username="both", global_role=GlobalRole.AUDITOR, is_superuser=True)
    assert (is_admin(both), is_auditor(both)) == (False, True)
    assert not User.objects.filter(ADMINS, pk=both.pk).exists()


@pytest.mark.parametrize("is_active", [True, False])
@pytest.mark.parametrize("is_superuser", [True, False])
@pytest.mark.parametrize("global_role", list(GlobalRole.values))
def test_the_admin_rule_and_its_database_filter_agree(is_active, is_superuser, global_role):
    user = UserFactory(username="x", is_active=is_active, is_superuser=is_superuser, global_role=global_role)
    assert is_admin(user) == User.objects.filter(ADMINS, pk=user.pk).exists()


def test_user_routes(world):
    admin, auditor, outsider = (api_client(u) for u in (world.admin, world.auditor, world.outsider))
    assert admin.get("/api/v1/users/olly").json() == {
        "username": "olly",
        "service_account": False,
        "global_role": "none",
        "is_active": True,
        "is_superuser": False,
        "is_staff": False,
        "can_create_assets": False,
        "teams": [],
    }
    assert admin.get("/api/v1/users/r1").json()["teams"] == ["reviewers"]
    assert auditor.get("/api/v1/users/olly").status_code == 200
    assert outsider.get("/api/v1/users/olly").status_code == 403
    assert outsider.get("/api/v1/users/nobody").status_code == 403
    assert admin.get("/api/v1/users/nobody").status_code == 404
    before = last_seq()
    assert admin.patch("/api/v1/users/nobody", {"is_active": False}, format="json").status_code == 404
    assert auditor.patch("/api/v1/users/olly", {"is_active": False}, format="json").status_code == 403
    for body, field in [({"global_role": "root"}, "global_role"), ({"password": "x"}, "password")]:
        response = admin.patch("/api/v1/users/olly", body, format="json")
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == field
    response = admin.patch("/api/v1/users/audrey", {"can_create_assets": True}, format="json")
    assert (response.status_code, response.json()["type"]) == (400, "auditor-cannot-write")
    assert new_events(before) == []
    response = admin.patch("/api/v1/users/olly", {"is_active": False}, format="json")
    assert (response.status_code, response.json()["is_active"]) == (200, False)
    assert [event[0] for event in new_events(before)] == ["user.updated"]


def test_a_disabled_account_loses_its_tokens_and_reviews(world):
    response = api_client(world.admin).patch("/api/v1/users/ci", {"is_active": False}, format="json")
    assert response.status_code == 200
    assert world.client(token=world.ci_token).get("/api/v1/me").status_code == 401


def test_the_manage_scope_is_needed_to_change_roles(world):
    _, token = token_create(
        actor=None, source=SRC, account=world.admin, name="t", scopes=[Scope.READ, Scope.WRITE]
    )
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/users/olly").status_code == 200
    response = client.patch("/api/v1/users/olly", {"global_role": "admin"}, format="json")
    assert (response.status_code, response.json()["type"]) == (403, "insufficient-scope")


# Auditors hold no asset role --------------------------------------------------------------------------------


def test_a_manager_cannot_grant_manage_to_the_auditor(world):
    """A manager granted manage to the auditor, who then registered a version and granted roles onward."""
    response = api_client(world.manager).post(
        "/api/v1/models/fraud/permissions",
        {"principal_type": "user", "principal": "audrey", "role": "manage"},
        format="json",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert (body["type"], body["errors"][0]["field"]) == ("auditor-cannot-hold-role", "principal")
    assert granted_roles(world.auditor, world.asset) == set()


@pytest.mark.parametrize("role", list(Role))
def test_the_grant_service_refuses_every_role_to_an_auditor(world, role):
    with pytest.raises(InvalidInput) as exc:
        grant_add(actor=world.admin, source=SRC, asset=world.asset, principal=world.auditor, role=role)
    assert (exc.value.type, exc.value.errors[0].field) == ("auditor-cannot-hold-role", "principal")


def test_the_grant_command_refuses_an_auditor(world):
    with pytest.raises(CommandError, match="auditor"):
        call_command("grant", "audrey", "contribute", "model/fraud")


def test_a_grant_forced_to_an_auditor_gives_no_more_than_view(world):
    for role in ("manage", "contribute", "request_promotion", "review"):
        assign_perm(f"registry.{role}_asset", world.auditor, world.asset)
    team = Group.objects.create(name="builders")
    assign_perm("registry.manage_asset", team, world.asset)
    team_member_add(actor=world.admin, source=SRC, team=team, user=world.auditor)
    assert effective_roles(world.auditor, world.asset) == {Role.VIEW}
    assert granted_roles(world.auditor, world.asset) == set()  # only a view grant would count
    auditor = api_client(world.auditor)
    before = last_seq()
    registered = auditor.post("/api/v1/models/fraud/versions", {"digest": digest_for("x")}, format="json")
    assert registered.status_code == 403, registered.content
    granted = auditor.post(
        "/api/v1/models/fraud/permissions",
        {"principal_type": "user", "principal": "olly", "role": "view"},
        format="json",
    )
    assert granted.status_code == 403, granted.content
    assert auditor.patch("/api/v1/models/fraud", {"description": "x"}, format="json").status_code == 403
    # Nor may the auditor review with the forced grant, and nothing waits in their inbox.
    promotion = world.request().json()
    assert auditor.post(f"/api/v1/promotions/{promotion['id']}/approve", {}, format="json").status_code == 403
    assert not promotion_inbox_for_user(user=world.auditor).exists()
    assert [event[0] for event in new_events(before)] == ["promotion.requested"]
