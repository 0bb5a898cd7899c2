"""Concurrent writers on PostgreSQL: gapless version numbers and a gapless, fork-free audit log."""

import contextlib

import pytest

from audit.models import Action, AuditEvent
from core.source import Source
from registry import services
from registry.models import AssetVersion
from tests.factories import AssetFactory, digest_for
from tests.helpers import run_at_once, verify_chain

WRITERS = 16


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_registrations_get_numbers_1_to_16(admin):
    asset = AssetFactory(name="busy")

    def register(index):
        services.version_register(
            actor=admin, source=Source.cli(), asset=asset, data={"digest": digest_for(f"c{index}")}
        )

    assert run_at_once(register, WRITERS) == []
    numbers = sorted(AssetVersion.objects.filter(asset=asset).values_list("number", flat=True))
    assert numbers == list(range(1, WRITERS + 1))
    assert AuditEvent.objects.filter(action=Action.VERSION_CREATED).count() == WRITERS
    assert sorted(AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, WRITERS + 1))
    assert verify_chain() is None
    asset.refresh_from_db()
    assert asset.latest_version_number == WRITERS


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_writers_on_many_assets_keep_one_chain(admin):
    assets = [AssetFactory(name=f"a-{i}") for i in range(WRITERS)]

    def register(index):
        for round_ in range(3):
            services.version_register(
                actor=admin,
                source=Source.cli(),
                asset=assets[index],
                data={"digest": digest_for(f"{index}-{round_}")},
            )

    assert run_at_once(register, WRITERS) == []
    assert AuditEvent.objects.count() == WRITERS * 3
    assert verify_chain() is None
    times = list(AuditEvent.objects.order_by("seq").values_list("occurred_at", flat=True))
    assert times == sorted(times), "event times must follow their positions in the log"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_creates_of_one_name_give_one_asset(admin):
    from core.exceptions import Conflict
    from registry.models import Asset, AssetKind

    def create(index):
        with contextlib.suppress(Conflict):
            services.asset_create(actor=admin, source=Source.cli(), kind=AssetKind.MODEL, name="same")

    assert run_at_once(create, 8) == []
    assert Asset.objects.filter(name="same").count() == 1
    assert AuditEvent.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_rolled_back_writers_leave_no_gap(admin):
    """16 writers, every other one failing after its event was written: the log stays gapless."""
    from django.db import transaction

    from audit.services import audit_record

    assets = [AssetFactory(name=f"r-{i}") for i in range(WRITERS)]

    def write(index):
        for round_ in range(3):
            try:
                with transaction.atomic():
                    audit_record(
                        actor=admin,
                        action=Action.ASSET_UPDATED,
                        target=assets[index],
                        source=Source.cli(),
                        changes={"round": round_},
                    )
                    if index % 2:
                        raise RuntimeError("the change failed")
            except RuntimeError:
                pass

    assert run_at_once(write, WRITERS) == []
    assert sorted(AuditEvent.objects.values_list("seq", flat=True)) == list(range(1, WRITERS // 2 * 3 + 1))
    assert verify_chain() is None
