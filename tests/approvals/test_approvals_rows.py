"""The promotion tables' rows and the inbox's activity rows, written by
approvals/templatetags/approvals_rows.py, are the markup the template loops wrote: both rendered side by
side, byte for byte."""

import datetime as dt
from pathlib import Path

import pytest
from django.template import engines
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import User
from approvals.models import PromotionRequest, Status
from approvals.requirements import GateView
from approvals.selectors import PromotionRow
from audit.models import AuditEvent
from registry.models import Asset, AssetVersion, Stage

# The loops as they were: templates/approvals/_promotion_table.html, and the inbox's recent activity rows.
LOOPS = Path(__file__).parent / "loops"
LOOP_TABLE = (LOOPS / "promotion_table.html").read_text()
LOOP_ACTIVITY = (LOOPS / "activity.html").read_text().rstrip("\n")

PAST = dt.datetime(2026, 1, 2, 23, 59, 30, 123456, tzinfo=dt.UTC)
FAIL = GateView(label="auc ≥ 0.92", source="latest evaluation", passed=False, actual="0.87 <b>")
PASS = GateView(label="model card is not empty", source="", passed=True, actual="12 characters")


def promotion(pk, *, name="fraud-detector", base=True, rollback=False, service=False, status=Status.PENDING):
    asset = Asset(pk=pk, kind="model", name=name)
    return PromotionRequest(
        pk=pk,
        asset=asset,
        version=AssetVersion(pk=pk, asset=asset, number=pk + 1),
        base_version=AssetVersion(pk=pk + 100, asset=asset, number=pk) if base else None,
        stage=Stage(pk=1, name="production & <co>"),
        requested_by=User(pk=pk, username=f"ci-{name}", is_service_account=service),
        rollback=rollback,
        status=status,
        created_at=PAST - dt.timedelta(days=pk, minutes=7 * pk),
    )


def row(p, gates, approvals=1, required=2):
    failing = [gate for gate in gates if not gate.passed]
    return PromotionRow(p, len(gates) - len(failing), len(failing), failing, approvals, required)


ROWS = [
    row(promotion(1), [FAIL, PASS]),
    row(promotion(2, name='x<script>&"y', base=False, rollback=True, service=True), [FAIL, FAIL], 0, 3),
    row(promotion(3, status=Status.EXPIRED), [PASS]),
    row(promotion(4, status="approved"), []),
]


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize(
    "shown", [{}, {"show_requester": True}, {"show_requester": True, "show_status": True}]
)
def test_the_promotion_rows_are_the_loop_s_markup(zone, shown):
    context = {"rows": ROWS, "caption": "Pending <promotions>", **shown}
    with timezone.override(zone):
        loop = engines["django"].from_string(LOOP_TABLE).render(context)
        tag = render_to_string("approvals/_promotion_table.html", context)
    assert tag == loop
    assert "x&lt;script&gt;&amp;&quot;y" in tag and "0.87 &lt;b&gt;" in tag


def event(seq, *, kind="approvals.promotionrequest", actor_kind="user", summary="fraud <v2>"):
    found = AuditEvent(
        seq=seq,
        occurred_at=PAST - dt.timedelta(hours=seq, seconds=seq),
        action="promotion.requested",
        target_kind=kind,
        target_id=str(seq),
        actor_repr=f"ann <{seq}>",
        actor_kind=actor_kind,
    )
    found.summary = summary
    return found


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_the_activity_rows_are_the_loop_s_markup(zone):
    events = [
        event(1),
        event(2, kind="registry.asset", actor_kind="service_account"),
        event(3, kind="registry.asset", summary=""),
        event(4, actor_kind="system", summary="a & b"),
    ]
    context = {"activity": events, "promotion_kind": PromotionRequest._meta.label_lower}
    with timezone.override(zone):
        loop = engines["django"].from_string(LOOP_ACTIVITY).render(context)
        tag = (
            engines["django"]
            .from_string("{% load approvals_rows %}{% activity_rows activity promotion_kind %}")
            .render(context)
        )
    assert tag == loop
    assert "—" in tag and "(service account)" in tag
