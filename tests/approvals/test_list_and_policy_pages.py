"""The promotions list (/promotions/) and the policy pages (/policies/…): the API's visibility, filters and
services, refusals on the form next to their field, confirmation before deleting, pinned query counts."""

import html
import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from approvals.models import Policy, PromotionRequest, Status
from audit.models import Action, AuditEvent
from registry.models import Stage
from tests.factories import AssetFactory, PolicyFactory, PromotionFactory, UserFactory, VersionFactory

pytestmark = pytest.mark.django_db
LIST = "/promotions/"
POLICIES = "/policies/"


def browser(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text(response) -> str:
    return html.unescape(response.content.decode())


def listed_ids(response) -> list[int]:
    found = re.findall(r'<th scope="row"[^>]*><a href="/promotions/(\d+)/">', text(response))
    return [int(pk) for pk in found]


def field_error(response, field_id: str) -> str:
    body = response.content.decode()
    found = re.search(rf'<p class="field-error" id="{field_id}_error" role="alert">([^<]*)</p>', body)
    return html.unescape(found.group(1)) if found else ""


def new_events(since: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=since).order_by("seq"))


def last_seq() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


# The promotions list ----------------------------------------------------------------------------------


@pytest.fixture
def promotions(fraud, viewer):
    """Three requests on fraud (visible to the viewer) and one on a hidden asset."""
    staging = Stage.objects.get(name="staging")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    rows = [
        PromotionFactory(version=VersionFactory(asset=fraud), requested_by=alice),
        PromotionFactory(version=VersionFactory(asset=fraud), requested_by=bob, status=Status.REJECTED),
        PromotionFactory(version=VersionFactory(asset=fraud), requested_by=alice, stage=staging),
    ]
    hidden = PromotionFactory(version=VersionFactory(asset=AssetFactory(name="secret")), requested_by=alice)
    return rows, hidden


def test_the_list_shows_every_promotion_i_may_see_newest_first(promotions, viewer):
    rows, hidden = promotions
    response = browser(viewer).get(LIST)
    assert response.status_code == 200
    assert listed_ids(response) == [row.pk for row in reversed(rows)]
    assert hidden.pk not in listed_ids(response)
    body = text(response)
    assert 'aria-current="page">Promotions' in body and "(3)" in body
    assert "Rejected" in body and "alice" in body and f'href="{POLICIES}"' in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=rejected", [1]),
        ("stage=staging", [2]),
        ("requested_by=alice", [2, 0]),
        ("name=fraud&kind=model", [2, 1, 0]),
        ("name=secret", []),  # a hidden asset is not found by name either
        ("status=bogus", [2, 1, 0]),  # an invalid filter is ignored
    ],
)
def test_filters(promotions, viewer, query, expected):
    rows, _ = promotions
    response = browser(viewer).get(f"{LIST}?{query}")
    assert response.status_code == 200
    assert listed_ids(response) == [rows[index].pk for index in expected]


def test_the_list_pages_and_keeps_the_filters(fraud, viewer, monkeypatch):
    monkeypatch.setattr("approvals.views.PER_PAGE", 2)
    made = [PromotionFactory(version=VersionFactory(asset=fraud)) for _ in range(5)]
    client = browser(viewer)
    first = client.get(f"{LIST}?kind=model")
    assert listed_ids(first) == [made[4].pk, made[3].pk]
    assert 'href="?kind=model&amp;page=2"' in first.content.decode()
    third = client.get(f"{LIST}?kind=model&page=3")
    assert listed_ids(third) == [made[0].pk]


def test_the_list_needs_a_sign_in_and_only_get(client):
    response = client.get(LIST)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client.force_login(UserFactory())
    assert client.post(LIST).status_code == 405
    assert client.get(LIST).status_code == 200  # someone who sees nothing gets an empty list


def list_queries(client, asset, count: int) -> int:
    for _ in range(count):
        PromotionFactory(
            version=VersionFactory(asset=asset, metrics={"auc": 0.9}), requested_by=UserFactory()
        )
    client.get(LIST)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(LIST)
    assert len(listed_ids(response)) == PromotionRequest.objects.filter(asset=asset).count()
    return len(captured)


def test_the_list_query_count_is_pinned(fraud, viewer, django_assert_max_num_queries):
    client = browser(viewer)
    assert list_queries(client, fraud, 2) == list_queries(client, fraud, 12)
    # session, user, the stages (filter choices), the count, the rows (asset, version, stage, requester and
    # base version joined; approvals so far and the latest evaluation as subqueries), the versions' facts
    # for the gates (two: the stages they are in, the stages they have been in), the policies that apply and
    # their reviewer teams (requirements.standing_many, the promotion page's rule), the header's inbox badge
    with django_assert_max_num_queries(9):
        client.get(f"{LIST}?status=pending&stage=production")


# Policy pages -----------------------------------------------------------------------------------------


@pytest.fixture
def policies(fraud):
    """A policy for fraud (gates, teams), one for every model, and one for a hidden asset."""
    own = PolicyFactory(
        asset=fraud,
        required_approvals=2,
        gates=[{"type": "metric", "metric": "auc", "op": ">=", "value": 0.9, "source": "any"}],
    )
    every_model = PolicyFactory(kind="model")
    hidden = PolicyFactory(asset=AssetFactory(name="secret"))
    return own, every_model, hidden


def test_the_policies_page_lists_what_i_may_see_in_words(policies, viewer):
    own, every_model, hidden = policies
    response = browser(viewer).get(POLICIES)
    assert response.status_code == 200
    body = text(response)
    assert f'href="/policies/{own.pk}/"' in body and f'href="/policies/{every_model.pk}/"' in body
    assert f'href="/policies/{hidden.pk}/"' not in body and "secret" not in body
    assert "Promoting model/fraud into production needs 2 approvals" in body
    assert "The version must pass: auc >= 0.9 (any)." in body
    assert 'aria-current="page">Policies' in body


def test_a_policy_page_shows_the_policy_in_words_read_only_for_a_viewer(policies, viewer):
    own, every_model, hidden = policies
    client = browser(viewer)
    response = client.get(f"{POLICIES}{own.pk}/")
    assert response.status_code == 200
    body = text(response)
    assert "Policy for model/fraud → production" in body and 'id="read-only"' in body
    assert 'id="edit-policy"' not in body and 'id="delete-policy"' not in body
    assert "nor does the person who registered the version" in body
    assert "A request without a decision expires after 7 days." in body
    assert client.get(f"{POLICIES}{every_model.pk}/").status_code == 200  # policies of many: everyone
    assert client.get(f"{POLICIES}{hidden.pk}/").status_code == 404  # as for one that does not exist
    assert client.get(f"{POLICIES}999999/").status_code == 404
    assert client.get(f"{POLICIES}{own.pk}/edit").status_code == 403
    assert client.get(f"{POLICIES}{own.pk}/delete").status_code == 403
    assert client.get(f"{POLICIES}{hidden.pk}/edit").status_code == 404


def test_a_manager_changes_the_policy_of_their_asset_not_the_global_ones(policies, manager):
    own, every_model, _ = policies
    client = browser(manager)
    assert 'id="edit-policy"' in text(client.get(f"{POLICIES}{own.pk}/"))
    form = client.get(f"{POLICIES}{own.pk}/edit")
    assert form.status_code == 200 and 'name="required_approvals" value="2"' in form.content.decode()
    before = last_seq()
    data = {"required_approvals": "3", "gates": "[]", "expiry_hours": "48", "apply_on_approval": "on"}
    response = client.post(f"{POLICIES}{own.pk}/edit", data, follow=True)
    assert response.redirect_chain == [(f"{POLICIES}{own.pk}/", 302)]
    assert "Saved the policy for model/fraud → production." in text(response)
    own.refresh_from_db()
    assert (own.required_approvals, own.gates, own.expiry_hours) == (3, [], 48)
    [event] = new_events(before)
    assert (event.action, event.source) == (Action.POLICY_UPDATED, "web")
    assert client.get(f"{POLICIES}{every_model.pk}/edit").status_code == 403


def test_refusals_show_next_to_their_field_and_keep_the_input(policies, manager):
    own, _, _ = policies
    client = browser(manager)
    before = last_seq()
    gates = '[{"type": "metric", "metric": "auc", "op": "~", "value": 1}]'
    data = {"required_approvals": "25", "gates": gates, "expiry_hours": "48"}
    response = client.post(f"{POLICIES}{own.pk}/edit", data)
    assert response.status_code == 400
    assert "less than or equal to 20" in field_error(response, "policy_required_approvals")
    data["required_approvals"] = "2"
    response = client.post(f"{POLICIES}{own.pk}/edit", data)
    assert response.status_code == 400
    assert "Must be one of >= > <= < ==" in field_error(response, "policy_gates")
    assert gates in text(response)  # what was typed is kept
    data["gates"] = "not json"
    assert "not valid JSON" in field_error(client.post(f"{POLICIES}{own.pk}/edit", data), "policy_gates")
    assert new_events(before) == []


def test_creating_a_policy(fraud, manager, admin):
    client = browser(manager)
    assert client.get(f"{POLICIES}new").status_code == 200
    data = {
        "kind": "model",
        "name": "fraud",
        "stage": "production",
        "required_approvals": "1",
        "gates": '[{"type": "model_card"}]',
        "expiry_hours": "24",
    }
    response = client.post(f"{POLICIES}new", data, follow=True)
    policy = Policy.objects.get()
    assert response.redirect_chain == [(f"{POLICIES}{policy.pk}/", 302)]
    assert "model card is not empty" in text(response)
    assert (policy.asset, policy.apply_on_approval, policy.gates) == (fraud, False, [{"type": "model_card"}])
    again = client.post(f"{POLICIES}new", data)
    assert again.status_code == 409
    assert "exists already" in field_error(again, "policy_stage")
    assert 'name="name" value="fraud"' in again.content.decode()
    hidden = client.post(f"{POLICIES}new", {**data, "name": "nope"})
    assert field_error(hidden, "policy_name") == "There is no model named 'nope'."
    # A policy for every model is for registry admins: the refusal shows on the form.
    refused = client.post(f"{POLICIES}new", {**data, "name": ""})
    assert refused.status_code == 403 and "Only a registry admin may do this." in text(refused)
    assert browser(admin).post(f"{POLICIES}new", {**data, "name": ""}).status_code == 302
    assert Policy.objects.count() == 2


def test_deleting_a_policy_asks_first(policies, manager):
    own, _, _ = policies
    client = browser(manager)
    before = last_seq()
    confirm = client.get(f"{POLICIES}{own.pk}/delete")
    assert confirm.status_code == 200 and 'id="delete-form"' in confirm.content.decode()
    assert Policy.objects.filter(pk=own.pk).exists() and new_events(before) == []
    response = client.post(f"{POLICIES}{own.pk}/delete", follow=True)
    assert response.redirect_chain == [(POLICIES, 302)]
    assert not Policy.objects.filter(pk=own.pk).exists()
    assert "Deleted the policy for model/fraud → production." in text(response)
    [event] = new_events(before)
    assert event.action == Action.POLICY_DELETED


def policies_queries(client, count: int) -> int:
    for index in range(count):
        asset = AssetFactory(name=f"a{count}-{index}")
        PolicyFactory(asset=asset, gates=[{"type": "model_card"}])
    client.get(POLICIES)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(POLICIES)
    assert text(response).count('<th scope="row"><a href="/policies/') == Policy.objects.count()
    return len(captured)


def test_the_policies_query_count_is_pinned(admin, django_assert_max_num_queries):
    client = browser(admin)
    assert policies_queries(client, 2) == policies_queries(client, 12)
    # session, user, the count, the policies (asset, stage, creator joined), their reviewer teams (prefetch)
    # ... and the header's inbox badge
    with django_assert_max_num_queries(6):
        client.get(POLICIES)


def test_gates_of_the_form_reach_the_service_as_json(policies, admin):
    own, _, _ = policies
    gates = [{"type": "previous_stage", "stage": "staging", "when": "current"}]
    data = {"required_approvals": "1", "gates": json.dumps(gates), "expiry_hours": "5"}
    browser(admin).post(f"{POLICIES}{own.pk}/edit", data)
    own.refresh_from_db()
    assert own.gates == gates
    assert "is in staging" in text(browser(admin).get(f"{POLICIES}{own.pk}/"))
