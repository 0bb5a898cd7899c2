"""E-mail to people: written with the change that calls for it, sent after it commits, to the right people
only (those who may see the asset, who are people, who have an address and have not turned the kind off)."""

import datetime as dt

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.test import Client
from django.utils import timezone
from guardian.shortcuts import assign_perm

import audit.services
from accounts.models import User
from approvals import requirements, services
from approvals.models import Policy, PromotionRequest
from audit.models import Action, AuditEvent
from audit.services import TargetRef, audit_record
from core.source import Source
from notifications import tasks
from notifications.models import EmailNotification, Kind, NotificationSettings
from notifications.selectors import eligible_reviewers
from notifications.services import on_audit_event, promotions_warn_expiring
from registry.models import AssetUserObjectPermission
from tests.factories import AssetFactory, ServiceAccountFactory, TeamFactory, UserFactory
from tests.helpers import IS_POSTGRES

SRC = Source.cli()
REVIEWERS = ["r1@example.test", "r2@example.test", "r3@example.test"]


def person(username, asset=None, *roles, email=True):
    account = UserFactory(username=username, email=f"{username}@example.test" if email else "")
    for role in roles:
        assign_perm(f"registry.{role}_asset", account, asset)
    return account


def request_as(world, actor, version=None):
    return services.promotion_request(
        actor=actor,
        source=SRC,
        asset=world.asset,
        version=version or world.v2,
        stage=world.production,
        justification="better auc",
    )


def sent_to(kind_subject: str = "") -> list[str]:
    return sorted(
        address for message in mail.outbox if kind_subject in message.subject for address in message.to
    )


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """committed() runs what is enqueued when the change commits (the send), as in production."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


# Review requested ------------------------------------------------------------------------------------


def test_each_eligible_reviewer_gets_exactly_one_review_request(world, committed):
    hidden = person("hidden-reviewer", AssetFactory(name="other"), "review")  # reviews another asset only
    hidden.groups.add(TeamFactory(name="elsewhere"))
    bot = ServiceAccountFactory(username="review-bot", email="bot@example.test")
    assign_perm("registry.review_asset", bot, world.asset)
    no_address = person("no-address", world.asset, "review", email=False)
    no_address.groups.add(world.reviewers)
    with committed():
        promotion = request_as(world, world.ci)

    assert (
        sent_to() == REVIEWERS
    )  # not the author, the manager, a hidden reviewer, a bot, nor someone unreachable
    message = mail.outbox[0]
    assert message.subject == "Review requested: model/fraud v2 to production"
    for fact in ("model/fraud", "v2 (replaces v1)", "production", "ci (service account)", "pending"):
        assert fact in message.body
    assert f"https://registry.example.test/promotions/{promotion.pk}/" in message.body
    assert "https://registry.example.test/notifications/settings/" in message.body
    rows = EmailNotification.objects.filter(kind=Kind.REVIEW_REQUESTED)
    assert {(row.status, row.attempts, row.promotion_id) for row in rows} == {("sent", 1, promotion.pk)}

    # The same event seen again (a retried listener) queues nothing more.
    event = AuditEvent.objects.get(action="promotion.requested")
    with committed(), transaction.atomic():
        on_audit_event(event)
    assert rows.count() == 3 and len(mail.outbox) == 3


def test_the_recipients_are_exactly_those_the_services_let_review(world):
    Policy.objects.filter(pk=world.policy.pk).update(allow_author_approval=True)
    world.author.groups.add(world.reviewers)
    outside_team = person("outside-team", world.asset, "review")
    promotion = request_as(world, world.ci)
    needs, _ = requirements.requirements_for(promotion)
    expected = {
        user.pk
        for user in User.objects.exclude(email="")
        if requirements.review_refusal(user, promotion, needs) is None
    }
    assert {
        p.pk for p in eligible_reviewers(promotion=promotion, requirements=needs, kind=Kind.REVIEW_REQUESTED)
    } == (expected)
    assert world.author.pk in expected and outside_team.pk not in expected


def test_a_reviewer_who_turned_review_requests_off_gets_none(world, committed):
    NotificationSettings.objects.create(user=world.r1, review_requested=False)
    with committed():
        request_as(world, world.ci)
    assert sent_to() == REVIEWERS[1:]


# Decided ---------------------------------------------------------------------------------------------


@pytest.fixture
def rhea(world):
    """A person who requests promotions of fraud."""
    return person("rhea", world.asset, "request_promotion")


def test_the_requester_and_the_managers_are_told_of_a_rejection(world, rhea, committed):
    promotion = request_as(world, rhea)
    mail.outbox.clear()
    with committed():
        services.promotion_reject(actor=world.r1, source=SRC, promotion_id=promotion.pk, comment="too slow")
    assert sent_to("rejected") == ["mia@example.test", "rhea@example.test"]  # not r1, who rejected it
    body = mail.outbox[0].body
    assert "Status:        rejected" in body and "Reason:        too slow" in body
    assert f"https://registry.example.test/promotions/{promotion.pk}/" in body


def test_the_requester_and_the_managers_are_told_when_it_is_applied(world, rhea, committed):
    promotion = request_as(world, rhea)
    services.promotion_approve(actor=world.r1, source=SRC, promotion_id=promotion.pk)
    mail.outbox.clear()
    with committed():
        services.promotion_approve(actor=world.r2, source=SRC, promotion_id=promotion.pk)
    assert sent_to() == ["mia@example.test", "rhea@example.test"]
    assert {message.subject for message in mail.outbox} == {
        f"Promotion #{promotion.pk} applied: model/fraud v2"
    }


def test_approved_and_waiting_to_be_applied_is_told_once_then_applied(world, rhea, committed):
    Policy.objects.filter(pk=world.policy.pk).update(apply_on_approval=False, required_approvals=1)
    promotion = request_as(world, rhea)
    mail.outbox.clear()
    with committed():
        services.promotion_approve(actor=world.r1, source=SRC, promotion_id=promotion.pk)
    assert sent_to("approved, waiting to be applied") == ["mia@example.test", "rhea@example.test"]
    mail.outbox.clear()
    with committed():
        services.promotion_apply(actor=world.manager, source=SRC, promotion_id=promotion.pk)
    assert sent_to() == ["rhea@example.test"]  # the manager applied it


def test_a_service_accounts_request_is_told_to_the_managers_only(world, committed):
    promotion = request_as(world, world.ci)
    mail.outbox.clear()
    with committed():
        services.promotion_reject(actor=world.r1, source=SRC, promotion_id=promotion.pk, comment="no")
    assert sent_to() == ["mia@example.test"]


def test_a_requester_who_can_no_longer_see_the_asset_is_not_told(world, rhea, committed):
    promotion = request_as(world, rhea)
    AssetUserObjectPermission.objects.filter(user=rhea).delete()
    mail.outbox.clear()
    with committed():
        services.promotion_reject(actor=world.r1, source=SRC, promotion_id=promotion.pk, comment="no")
    assert sent_to() == ["mia@example.test"]


# About to expire -------------------------------------------------------------------------------------


def test_the_expiry_warning_is_sent_once_to_those_who_can_still_act(world, rhea, committed, settings):
    settings.NOTIFY_EXPIRY_HOURS = 24
    promotion = request_as(world, rhea)
    services.promotion_approve(actor=world.r1, source=SRC, promotion_id=promotion.pk)
    later = request_as(world, rhea, version=world.v3)  # supersedes the first; expires in days, not warned
    PromotionRequest.objects.filter(pk=later.pk).update(expires_at=timezone.now() + dt.timedelta(days=3))
    assert promotions_warn_expiring() == 0
    PromotionRequest.objects.filter(pk=later.pk).update(expires_at=timezone.now() + dt.timedelta(hours=2))
    services.promotion_approve(actor=world.r1, source=SRC, promotion_id=later.pk)
    NotificationSettings.objects.create(user=world.r3, expiring=False)
    mail.outbox.clear()
    with committed():
        assert tasks.warn_expiring_promotions() == 3
    # The requester, the manager, and the reviewer who has not reviewed it and wants the warning.
    assert sent_to("About to expire") == ["mia@example.test", "r2@example.test", "rhea@example.test"]
    assert "you may review promotions of model/fraud" in next(m.body for m in mail.outbox if "r2" in m.to[0])
    with committed():
        assert tasks.warn_expiring_promotions() == 0
    assert len(mail.outbox) == 3


# Webhooks failing --------------------------------------------------------------------------------------


def _failing(asset_id, created_by):
    with transaction.atomic():
        return audit_record(
            actor=None,
            action=Action.WEBHOOK_FAILING,
            target=TargetRef(kind="webhooks.webhooksubscription", id="7", repr="webhook 7"),
            source=Source.task(),
            asset_id=asset_id,
            changes={
                "created_by": created_by,
                "url": "https://hooks.example.test/in",
                "last_error": "answered 500",
            },
        )


def test_a_failing_webhook_is_told_to_its_creator_and_the_assets_managers(world, committed):
    person("cora", world.asset, "contribute")
    with committed():
        _failing(world.asset.pk, "cora")
    assert sent_to("Webhook failing") == ["cora@example.test", "mia@example.test"]
    body = mail.outbox[0].body
    assert "Deliveries to webhook 7 keep failing." in body
    assert "https://hooks.example.test/in" in body and "answered 500" in body
    assert "See it: https://registry.example.test/webhooks/7/" in body


def test_a_failing_webhook_is_not_told_to_a_creator_who_cannot_see_the_asset_nor_to_a_service_account(
    world, committed
):
    with committed():
        _failing(world.asset.pk, "olly")  # the outsider
        _failing(world.asset.pk, "ci")  # a service account
        _failing(None, "olly")  # a subscription to every asset it may see: no asset named
    assert sent_to() == ["mia@example.test", "mia@example.test", "olly@example.test"]


# Transactions and failures -------------------------------------------------------------------------------


def test_nothing_is_written_or_sent_when_the_change_rolls_back(world, monkeypatch, committed):
    def broken(event):
        if event.action == "promotion.requested":
            raise RuntimeError("the change fails after its event")

    monkeypatch.setattr(audit.services, "_listeners", [*audit.services._listeners, broken])
    with committed() as callbacks, pytest.raises(RuntimeError):
        request_as(world, world.ci)
    assert not EmailNotification.objects.exists()
    assert not PromotionRequest.objects.exists()
    assert callbacks == [] and mail.outbox == []


class FailingBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ConnectionRefusedError("mail server down")


def test_a_failing_mail_server_leaves_the_email_due_later_and_the_request_succeeds(
    world, settings, committed
):
    settings.EMAIL_BACKEND = "tests.notifications.test_notifications.FailingBackend"
    client = world.client(token=world.ci_token)
    with committed():
        response = world.request(client)
    assert response.status_code == 201
    rows = EmailNotification.objects.order_by("pk")
    assert [(row.status, row.attempts) for row in rows] == [("pending", 1)] * 3
    for row in rows:
        assert "ConnectionRefusedError: mail server down" in row.last_error
        # The first retry about a minute later (approvals' outbox backoff: 60 s ± 20 %).
        assert 40 <= (row.next_attempt_at - timezone.now()).total_seconds() <= 75
    assert tasks.sweep_emails() == 0  # not due yet

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    EmailNotification.objects.update(next_attempt_at=timezone.now())
    assert tasks.sweep_emails() == 3
    rows = EmailNotification.objects.order_by("pk")
    assert [(row.status, row.attempts, row.last_error) for row in rows] == [("sent", 2, "")] * 3
    assert sent_to() == REVIEWERS


def test_an_email_failing_every_attempt_ends_failed(world, settings, committed):
    settings.EMAIL_BACKEND = "tests.notifications.test_notifications.FailingBackend"
    with committed():
        request_as(world, world.ci)
    for _ in range(tasks.MAX_ATTEMPTS):
        EmailNotification.objects.update(next_attempt_at=timezone.now())
        tasks.sweep_emails()
    assert set(EmailNotification.objects.values_list("status", "attempts")) == {
        ("failed", tasks.MAX_ATTEMPTS)
    }


def test_with_a_broker_the_emails_are_enqueued_after_commit(world, settings, monkeypatch, committed):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    enqueued = []
    monkeypatch.setattr(tasks.send_email, "apply_async", lambda args, countdown=0: enqueued.append(args[0]))
    with committed() as callbacks:
        request_as(world, world.ci)
        assert enqueued == []  # not before the commit
    assert len(callbacks) >= 1
    assert sorted(enqueued) == sorted(EmailNotification.objects.values_list("pk", flat=True))
    assert mail.outbox == []


# The settings page ---------------------------------------------------------------------------------------


def browser(user=None):
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_the_settings_page_turns_a_kind_off_and_is_audited(world):
    client = browser(world.r1)
    page = client.get("/notifications/settings/")
    assert page.status_code == 200
    assert page.content.decode().count(" checked") == 4
    assert "r1@example.test" in page.content.decode()
    response = client.post(
        "/notifications/settings/", {"decided": "on", "expiring": "on", "webhook_failing": "on"}
    )
    assert response.status_code == 302
    row = NotificationSettings.objects.get(user=world.r1)
    assert (row.review_requested, row.decided, row.expiring, row.webhook_failing) == (False, True, True, True)
    event = AuditEvent.objects.get(action="notifications.settings_updated")
    assert (event.actor_repr, event.changes) == ("r1", {"review_requested": {"before": True, "after": False}})
    assert client.get("/notifications/settings/").content.decode().count(" checked") == 3
    client.post("/notifications/settings/", {"decided": "on", "expiring": "on", "webhook_failing": "on"})
    assert (
        AuditEvent.objects.filter(action="notifications.settings_updated").count() == 1
    )  # no change: no event


def test_the_settings_page_needs_a_session_and_answers_405_to_other_methods(world):
    assert browser().get("/notifications/settings/").status_code == 302
    assert browser(world.r1).put("/notifications/settings/").status_code == 405
    assert browser(world.r1).delete("/notifications/settings/").status_code == 405


def test_a_subscription_that_fails_for_good_emails_its_creator_once(world, settings, committed):
    """End to end with the webhooks app: a final delivery failure marks the subscription failing, and its
    creator (here also the asset's manager: one e-mail) hears of it once the attempt is recorded."""
    from approvals.models import OutboxMessage
    from approvals.tasks import MAX_ATTEMPTS, deliver_message
    from registry.services import asset_update
    from tests.helpers import Receiver
    from webhooks.services import webhook_create

    settings.CALLBACK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = Receiver(500)
    try:
        subscription = webhook_create(
            actor=world.manager, source=SRC, url=receiver.url, events=["asset.updated"], asset=world.asset
        )
        asset_update(actor=None, source=SRC, asset=world.asset, tags=["t1"])
        message = OutboxMessage.objects.get(webhook=str(subscription.pk), event_type="asset.updated")
        OutboxMessage.objects.filter(pk=message.pk).update(attempts=MAX_ATTEMPTS - 1)
        with committed():
            assert deliver_message(message.pk) == "failed"
    finally:
        receiver.close()
    assert sent_to("Webhook failing") == ["mia@example.test"]
    assert f"https://registry.example.test/webhooks/{subscription.pk}/" in mail.outbox[0].body
    assert "you created this subscription" in mail.outbox[0].body


# What the services share with the listener --------------------------------------------------------------


def _written() -> list[tuple]:
    rows = EmailNotification.objects.order_by("kind", "reference", "recipient_id")
    columns = ("kind", "reference", "recipient_id", "address", "promotion_id", "subject", "body")
    return list(rows.values_list(*columns))


def test_the_emails_written_from_what_the_service_holds_are_those_a_fresh_read_writes(world, rhea):
    """The services hand the listener the request and policies they hold (approvals.requirements.in_hand);
    the same events read back from the log, with nothing in hand, write the same e-mails, byte for byte."""
    promotion = request_as(world, rhea)
    later = PromotionRequest(pk=promotion.pk + 1)
    steps = [
        lambda: None,
        lambda: services.promotion_approve(actor=world.r1, source=SRC, promotion_id=promotion.pk),
        lambda: services.promotion_approve(actor=world.r2, source=SRC, promotion_id=promotion.pk),
        lambda: request_as(world, rhea, version=world.v3),
        lambda: services.promotion_reject(actor=world.r1, source=SRC, promotion_id=later.pk, comment="no"),
    ]
    kinds = set()
    for step in steps:
        last = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() if kinds else 0
        step()
        written = _written()
        kinds |= {row[0] for row in written}
        EmailNotification.objects.all().delete()
        with transaction.atomic():
            for event in AuditEvent.objects.filter(seq__gt=last).order_by("seq"):
                on_audit_event(event)
        assert _written() == written
        EmailNotification.objects.all().delete()
    assert kinds == {Kind.REVIEW_REQUESTED, Kind.DECIDED}


@pytest.mark.parametrize("could_be_told", [True, False])
def test_the_review_request_listener_runs_only_when_someone_could_be_told(world, monkeypatch, could_be_told):
    """On PostgreSQL the audit append asks first (notifications.selectors.reviewers_to_tell); elsewhere the
    listener is always called, and finds nobody."""
    calls = []
    asked = "notifications.selectors.eligible_reviewers"
    monkeypatch.setattr(asked, lambda **arguments: calls.append(arguments) or [])
    if not could_be_told:
        User.objects.filter(username__in=["r1", "r2", "r3"]).update(email="")
    request_as(world, world.ci)
    assert len(calls) == (1 if could_be_told or not IS_POSTGRES else 0)
