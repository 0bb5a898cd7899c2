"""The header's inbox badge and the wider "My requests" list of the inbox."""

import html
import re

import pytest
from django.test import Client
from guardian.shortcuts import assign_perm

from approvals import selectors, services
from approvals.models import Policy
from core.source import Source
from registry.models import AssetKind, StagePointer
from tests.factories import AssetFactory, ServiceAccountFactory, TeamFactory, UserFactory, VersionFactory

SRC = Source.cli()


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def request_on(world, asset, version, actor=None):
    return services.promotion_request(
        actor=actor or world.ci,
        source=SRC,
        asset=asset,
        version=version,
        stage=world.production,
        justification="better auc",
    )


def another_model(world, name):
    asset = AssetFactory(kind=AssetKind.MODEL, name=name)
    v1, v2 = VersionFactory(asset=asset), VersionFactory(asset=asset)
    StagePointer.objects.create(
        asset=asset, stage=world.production, version=v1, updated_at="2026-01-01T00:00:00Z"
    )
    assign_perm("registry.review_asset", world.reviewers, asset)
    assign_perm("registry.request_promotion_asset", world.ci, asset)
    Policy.objects.create(asset=asset, kind=AssetKind.MODEL, stage=world.production, required_approvals=2)
    return asset, v2


def badge(response) -> str | None:
    match = re.search(r'<a href="/"[^>]*>(.*?)</a>', response.content.decode(), re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))) if match else None


# The badge -----------------------------------------------------------------------------------------------


def test_the_inbox_link_counts_what_waits_for_my_review(world):
    assert badge(browser(world.r1).get("/registry/")) == "Inbox"  # nothing waits: no badge
    promotion = request_on(world, world.asset, world.v2)
    request_on(world, *another_model(world, "churn"))
    response = browser(world.r1).get("/registry/")
    assert badge(response) == "Inbox 2, 2 awaiting your review"
    assert '<span class="badge" aria-hidden="true">2</span>' in response.content.decode()
    services.promotion_approve(actor=world.r1, source=SRC, promotion_id=promotion.pk)
    assert badge(browser(world.r1).get("/registry/")) == "Inbox 1, 1 awaiting your review"
    assert badge(browser(world.r2).get("/registry/")) == "Inbox 2, 2 awaiting your review"
    # The same number as the inbox's list, for someone who reviews nothing and for the manager.
    for user in (world.r1, world.r2, world.manager, world.outsider):
        assert selectors.promotion_inbox_count_for_user(user=user) == len(
            selectors.promotion_inbox_for_user(user=user)
        )
    assert badge(browser(world.outsider).get("/registry/")) == "Inbox"


@pytest.mark.parametrize("rows", [1, 6])
def test_the_badge_is_one_query_whatever_the_number_of_requests(world, django_assert_num_queries, rows):
    for index in range(rows):
        request_on(world, *another_model(world, f"model-{index}"))
    client = browser(world.r1)
    # session, user; the badge's count; the settings row of the page.
    with django_assert_num_queries(4):
        response = client.get("/notifications/settings/")
    assert badge(response) == f"Inbox {rows}, {rows} awaiting your review"


def test_who_never_reviews_pays_no_query_for_the_badge(world, django_assert_num_queries):
    client = browser(UserFactory(username="audrey", global_role="auditor"))
    # session, user; the settings row of the page (no count: an auditor never reviews).
    with django_assert_num_queries(3):
        client.get("/notifications/settings/")


# My requests -------------------------------------------------------------------------------------------


def test_my_requests_shows_my_teams_service_accounts_and_my_assets_requests(world):
    ml = TeamFactory(name="ml")
    world.ci.groups.add(ml)
    member = UserFactory(username="tom")
    member.groups.add(ml)
    assign_perm("registry.view_asset", member, world.asset)
    blind_member = UserFactory(username="bea")  # in the team, but may not see the asset
    blind_member.groups.add(ml)
    other_bot = ServiceAccountFactory(username="other-bot")
    assign_perm("registry.request_promotion_asset", other_bot, world.asset)
    team_manager = UserFactory(username="tina")
    managers = TeamFactory(name="fraud-managers")
    team_manager.groups.add(managers)
    assign_perm("registry.manage_asset", managers, world.asset)

    by_ci = request_on(world, world.asset, world.v2)
    by_other_bot = request_on(world, world.asset, world.v3, actor=other_bot)  # supersedes the first

    def mine(user):
        return [p.pk for p in selectors.promotion_requests_of_user(user=user)]

    assert mine(member) == [by_ci.pk]  # the team's service account; not another bot's request
    assert mine(world.manager) == [by_other_bot.pk, by_ci.pk]  # newest first, whoever requested them
    assert mine(team_manager) == [by_other_bot.pk, by_ci.pk]  # manage through a team
    assert mine(blind_member) == []
    assert mine(world.outsider) == []
    assert mine(world.r1) == []  # a reviewer is not a requester

    page = html.unescape(re.sub(r"<[^>]+>", "", browser(member).get("/").content.decode()))
    section = page[page.index("My requests") : page.index("Recent activity")]
    assert f"#{by_ci.pk}" in section and "ci (service account)" in section
    assert "Requested by" in section
    assert f"#{by_ci.pk}" not in html.unescape(browser(world.outsider).get("/").content.decode())


def test_my_requests_is_one_query_whatever_the_number_of_rows(world, django_assert_num_queries):
    for index in range(5):
        request_on(world, *another_model(world, f"model-{index}"))
    with django_assert_num_queries(1):
        rows = list(selectors.promotion_requests_of_user(user=world.manager))
    assert rows == []  # mia manages fraud only
    assign_perm("registry.manage_asset", world.manager, AssetFactory(name="unused"))
    ml = TeamFactory(name="ml")
    world.ci.groups.add(ml)
    world.manager.groups.add(ml)
    with django_assert_num_queries(1):
        rows = list(selectors.promotion_requests_of_user(user=world.manager))
    assert rows == []  # the manager sees none of those assets: visibility still applies
