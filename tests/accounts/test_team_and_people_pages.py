"""The admins' pages for teams and people: members added and removed, global roles and flags changed, all
through the audited services, with CSRF; anyone else is refused."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from audit.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
LOGIN = "/accounts/login/"


@pytest.fixture
def team():
    team = Group.objects.create(name="reviewers")
    UserFactory(username="rita").groups.add(team)
    return team


def actions_since(seq: int) -> list[str]:
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values_list("action", flat=True))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


PAGES = ["/access/teams/", "/access/teams/reviewers/", "/access/people/", "/access/people/rita/"]
POSTS = [
    "/access/teams/reviewers/members/add",
    "/access/teams/reviewers/members/rita/remove",
    "/access/people/rita/roles",
]


@pytest.mark.parametrize("url", PAGES)
def test_admins_see_the_pages_linked_from_the_access_page(client, admin, team, url):
    client.force_login(admin)
    response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'href="/access/teams/"' in body and 'href="/access/people/"' in body
    assert 'aria-current="page">Access' in body


@pytest.mark.parametrize("role", ["auditor", ""])
@pytest.mark.parametrize("url", PAGES + POSTS)
def test_anyone_else_gets_403_and_changes_nothing(client, team, role, url):
    client.force_login(UserFactory(username="someone", global_role=role))
    before = last_seq()
    response = client.get(url) if url.endswith("/") else client.post(url, {"user": "someone"})
    assert response.status_code == 403
    assert actions_since(before) == []


@pytest.mark.parametrize("url", PAGES + POSTS)
def test_anonymous_is_sent_to_sign_in(client, team, url):
    response = client.get(url) if url.endswith("/") else client.post(url)
    assert response.status_code == 302
    assert response["Location"].startswith(f"{LOGIN}?next=")


@pytest.mark.parametrize(
    ("method", "url"), [("post", url) for url in PAGES] + [("get", url) for url in POSTS]
)
def test_wrong_method_is_405(client, admin, team, method, url):
    client.force_login(admin)
    assert getattr(client, method)(url).status_code == 405


@pytest.mark.parametrize(
    "url", ["/access/teams/nowhere/", "/access/people/nobody/", "/access/people/nobody/roles"]
)
def test_unknown_team_or_person_is_404(client, admin, url):
    client.force_login(admin)
    response = client.get(url) if url.endswith("/") else client.post(url, {"global_role": "none"})
    assert response.status_code == 404


def test_add_and_remove_a_member(client, admin, team):
    UserFactory(username="sam")
    client.force_login(admin)
    before = last_seq()
    response = client.post("/access/teams/reviewers/members/add", {"user": "sam"}, follow=True)
    assert response.redirect_chain == [("/access/teams/reviewers/", 302)]
    assert shown_messages(response) == ["Added sam to team reviewers."]
    assert "sam" in response.content.decode()
    response = client.post("/access/teams/reviewers/members/sam/remove", follow=True)
    assert shown_messages(response) == ["Removed sam from team reviewers."]
    assert list(team.user_set.values_list("username", flat=True)) == ["rita"]
    assert actions_since(before) == ["team.member_added", "team.member_removed"]


@pytest.mark.parametrize(
    ("user", "message"),
    [("nobody", "user: no account named 'nobody'"), ("rita", "rita is already a member of team reviewers.")],
)
def test_a_refused_member_is_a_message_and_changes_nothing(client, admin, team, user, message):
    client.force_login(admin)
    before = last_seq()
    response = client.post("/access/teams/reviewers/members/add", {"user": user}, follow=True)
    assert any(message in shown for shown in shown_messages(response)), shown_messages(response)
    assert actions_since(before) == []


def test_change_a_persons_role_and_flags(client, admin, team):
    client.force_login(admin)
    before = last_seq()
    form = {"global_role": "admin", "is_active": "on", "can_create_assets": "on"}
    response = client.post("/access/people/rita/roles", form, follow=True)
    assert response.redirect_chain == [("/access/people/rita/", 302)]
    assert shown_messages(response) == ["Saved the roles of rita."]
    rita = User.objects.get(username="rita")
    assert (rita.global_role, rita.has_perm("registry.add_asset")) == ("admin", True)
    [event] = AuditEvent.objects.filter(seq__gt=before)
    assert event.action == "user.updated"
    assert event.changes["after"] == {"global_role": "admin", "can_create_assets": True}
    # The page shows what is stored now; the same form again changes nothing.
    assert 'value="admin" selected' in response.content.decode()
    client.post("/access/people/rita/roles", form)
    assert actions_since(before) == ["user.updated"]


def test_a_refused_role_change_is_a_message(client, admin, team):
    client.force_login(admin)
    before = last_seq()
    response = client.post(
        "/access/people/root/roles", {"global_role": "none", "is_active": "on"}, follow=True
    )
    assert shown_messages(response) == [
        "This is the last active registry admin; make someone else an admin first."
    ]
    assert actions_since(before) == []
    response = client.post("/access/people/rita/roles", {"global_role": "boss"})
    assert response.status_code == 400
    assert actions_since(before) == []


def test_superuser_status_is_read_only_for_other_admins(client, admin, team):
    client.force_login(admin)
    response = client.get("/access/people/rita/")
    assert '<input type="checkbox" name="is_superuser" disabled' in response.content.decode()
    client.post("/access/people/rita/roles", {"global_role": "none", "is_active": "on", "is_superuser": "on"})
    assert not User.objects.get(username="rita").is_superuser


def test_posts_need_the_csrf_token(admin, team):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    for url in POSTS:
        assert client.post(url, {"user": "root", "global_role": "none"}).status_code == 403
    assert list(team.user_set.values_list("username", flat=True)) == ["rita"]
    page = client.get("/access/teams/reviewers/").content.decode()
    assert page.count('name="csrfmiddlewaretoken"') >= 3  # sign-out, remove, add


def page_queries(client, admin, url: str, count: int) -> int:
    for index in range(count):
        person = UserFactory(username=f"p{count}-{index:03d}")
        person.groups.add(*Group.objects.all())
        Group.objects.create(name=f"t{count}-{index:03d}")
    client.force_login(admin)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize(
    ("url", "limit"),
    [
        # session, user, the teams with their member counts, the header's inbox badge
        ("/access/teams/", 4),
        # session, user, the team, its members, the inbox badge
        ("/access/teams/reviewers/", 5),
        # session, user, the accounts, their teams (prefetch), the inbox badge
        ("/access/people/", 5),
    ],
)
def test_list_pages_query_count_is_pinned(client, admin, team, url, limit, django_assert_max_num_queries):
    assert page_queries(client, admin, url, 2) == page_queries(client, admin, url, 20)
    with django_assert_max_num_queries(limit):
        client.get(url)


def test_person_page_query_count_is_pinned(client, admin, team, django_assert_max_num_queries):
    client.force_login(admin)
    # session, user, the account, its add_asset permission, its teams, the header's inbox badge
    with django_assert_max_num_queries(6):
        assert client.get("/access/people/rita/").status_code == 200
