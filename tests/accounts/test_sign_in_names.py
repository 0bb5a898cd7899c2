"""Sign-in counts, locks and authenticates one name however it is typed, and refused attempts cannot grow
the audit log."""

import unicodedata

import pytest
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import User
from accounts.ratelimit import address_bucket
from accounts.usernames import sign_in_name
from audit.models import AuditEvent
from tests.factories import ServiceAccountFactory, UserFactory

PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


def sign_in(username, password, address="10.0.0.1"):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/accounts/login/", {"username": username, "password": password})
    return response, client


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("seq").values_list("changes", flat=True))


# The lock holds for every spelling of a name ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("variant", ["dave ", " dave", "\uff44\uff41\uff56\uff45", "DAVE", "\uff24ave\t"])
def test_failures_under_another_spelling_lock_the_account(settings, variant):
    settings.LOGIN_FAILURE_LIMIT = 3
    UserFactory(username="dave", password=PASSWORD)
    for index in range(3):  # from three addresses, so that only the name's count can lock
        response, _ = sign_in(variant, "wrong", address=f"10.0.1.{index}")
        assert response.status_code == 200
    response, client = sign_in("dave", PASSWORD, address="10.0.2.1")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_mixed_spellings_share_one_count_and_the_lock_refuses_every_spelling(settings):
    settings.LOGIN_FAILURE_LIMIT = 4
    UserFactory(username="dave", password=PASSWORD)
    for index, variant in enumerate(["dave ", "\uff44\uff41\uff56\uff45", "Dave", "\u3000dave"]):
        assert sign_in(variant, "wrong", address=f"10.0.3.{index}")[0].status_code == 200
    for variant in ("dave", "\uff44\uff41\uff56\uff45", " DAVE "):
        assert sign_in(variant, PASSWORD, address="10.0.4.1")[0].status_code == 429


# Authentication finds the account by the same name ------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("typed", ["Dave", "dave", "\uff44\uff41\uff56\uff45 ", " DAVE"])
def test_an_account_stored_with_capitals_signs_in_by_its_sign_in_name(typed):
    dave = UserFactory(username="Dave", password=PASSWORD)
    response, client = sign_in(typed, PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(dave.pk)
    assert [event["username"] for event in events("login.failed")] == []


@pytest.mark.django_db
def test_a_successful_sign_in_clears_the_count_of_every_spelling(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    UserFactory(username="Dave", password=PASSWORD)
    for index in range(2):
        sign_in("\uff44\uff41\uff56\uff45", "wrong", address=f"10.0.5.{index}")
    assert sign_in("DAVE", PASSWORD, address="10.0.6.1")[0].status_code == 302
    for index in range(2):
        sign_in("dave ", "wrong", address=f"10.0.7.{index}")
    assert sign_in("dave", PASSWORD, address="10.0.8.1")[0].status_code == 302


@pytest.mark.django_db
def test_two_accounts_with_one_sign_in_name_sign_nobody_in_and_cannot_be_created_in_forms():
    # Accounts written straight to the database (older data) can share a sign-in name: neither signs in.
    UserFactory(username="dave", password=PASSWORD)
    UserFactory(username="Dave", password=PASSWORD)
    for typed in ("dave", "Dave"):
        response, client = sign_in(typed, PASSWORD)
        assert response.status_code == 200 and "_auth_user_id" not in client.session
    # Forms (the admin's) validate the model, which refuses a new name that clashes.
    with pytest.raises(ValidationError) as refused:
        User(username="\uff24\uff21\uff36\uff25", password="x").full_clean()
    assert "username" in refused.value.message_dict
    User(username="davey", password="x").full_clean()


@pytest.mark.django_db
def test_editing_an_account_does_not_clash_with_itself():
    ann = UserFactory(username="Ann", password=PASSWORD)
    ann.first_name = "Ann"
    ann.full_clean()


@pytest.mark.django_db
def test_service_accounts_never_sign_in_whatever_the_spelling():
    account = ServiceAccountFactory(username="ci-fraud")
    account.set_password(PASSWORD)
    account.save()
    for typed in ("ci-fraud", "CI-FRAUD", "\uff43\uff49-fraud"):
        response, client = sign_in(typed, PASSWORD)
        assert response.status_code == 200 and "_auth_user_id" not in client.session


# Refused attempts do not grow the audit log -------------------------------------------------------------


@pytest.mark.django_db
def test_refused_attempts_for_a_locked_name_write_one_lock_event(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    UserFactory(username="dave", password=PASSWORD)
    for index in range(40):
        sign_in(["dave", "\uff44\uff41\uff56\uff45", "DAVE "][index % 3], "wrong", address=f"10.1.{index}.1")
    failed = events("login.failed")
    assert [(event["username"], event["reason"]) for event in failed] == [("dave", "invalid_login")] * 3
    assert events("login.locked") == [
        {"scope": "username", "username": "dave", "failures": 3, "seconds": settings.LOGIN_FAILURE_WINDOW}
    ]


@pytest.mark.django_db
def test_one_address_trying_many_names_is_locked_and_writes_a_bounded_number_of_events(settings):
    settings.LOGIN_FAILURE_LIMIT = 5
    for index in range(60):
        response, _ = sign_in(f"user-{index}", "wrong", address="192.0.2.7")
        assert response.status_code == (200 if index < 5 else 429)
    assert len(events("login.failed")) == 5
    assert events("login.locked") == [
        {"scope": "address", "address": "192.0.2.7", "failures": 5, "seconds": settings.LOGIN_FAILURE_WINDOW}
    ]
    locked = AuditEvent.objects.get(action="login.locked")
    assert (locked.actor_kind, locked.target_kind, locked.target_id) == ("system", "address", "192.0.2.7")


@pytest.mark.django_db
def test_addresses_of_one_ipv6_network_share_a_count(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for index in range(3):
        sign_in(f"user-{index}", "wrong", address=f"2001:db8:1:2::{index + 1:x}")
    assert sign_in("someone", "wrong", address="2001:db8:1:2:ffff::9")[0].status_code == 429
    assert sign_in("someone", "wrong", address="2001:db8:1:3::1")[0].status_code == 200


@pytest.mark.django_db
def test_the_failed_event_keeps_what_was_typed_next_to_the_name_counted():
    sign_in(" \uff24\uff21\uff36\uff25", "wrong")
    assert events("login.failed") == [
        {"username": "dave", "typed": " \uff24\uff21\uff36\uff25", "reason": "invalid_login"}
    ]


@pytest.mark.django_db
def test_one_failure_engaging_both_locks_writes_one_event_for_each(settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        sign_in("dave", "wrong", address="2001:db8::7")
    locked = AuditEvent.objects.filter(action="login.locked").order_by("seq")
    assert [(event.target_kind, event.target_id, event.target_repr) for event in locked] == [
        ("address", "2001:db8::/64", "2001:db8::/64"),
        ("accounts.user", "", "dave"),
    ]
    assert [event.changes["scope"] for event in locked] == ["address", "username"]
    assert locked[0].context["ip"] == "2001:db8::7"


def test_address_buckets():
    assert address_bucket("192.0.2.7") == "192.0.2.7"
    assert address_bucket("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_bucket("2001:db8::1") == "2001:db8::/64"
    assert address_bucket("not an address") == "not an address"


# The name is one function, stable, and agrees with what the form hands the backend ----------------------

_form_field = AuthenticationForm().fields["username"]


def _form_cleaned(raw: str) -> str:
    return _form_field.to_python(raw)


def test_sign_in_names():
    assert sign_in_name("  \uff44\uff41\uff56\uff45\t") == sign_in_name("DAVE") == "dave"
    assert sign_in_name("Straße") == sign_in_name("STRASSE") == "strasse"
    assert sign_in_name("x" * 200 + " ") == "x" * 200  # too long to be an account: not normalised


@given(st.text(max_size=40))
def test_sign_in_name_is_idempotent_and_agrees_with_the_form(raw):
    name = sign_in_name(raw)
    assert sign_in_name(name) == name
    assert sign_in_name(_form_cleaned(raw)) == name
    assert name == name.strip()
    assert unicodedata.is_normalized("NFKC", name)
