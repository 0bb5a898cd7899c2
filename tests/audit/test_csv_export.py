"""The CSV export is safe to open in a spreadsheet: no cell is a formula, and the header is the first line."""

import csv
import io

import pytest
from django.core.cache import cache
from django.test import Client
from guardian.shortcuts import assign_perm

from audit.export import CSV_HEADER, CSV_NOTICE, spreadsheet_cell
from core.source import Source
from registry import services
from tests.factories import AssetFactory, UserFactory, VersionFactory
from tests.helpers import api_client

pytestmark = pytest.mark.django_db
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
HYPERLINK = '=HYPERLINK("http://127.0.0.1/collect?x="&A1,"Open")'


@pytest.fixture
def auditor_api(auditor):
    return api_client(auditor)


def download(client, url="/api/v1/audit/export?format=csv"):
    response = client.get(url)
    assert response.status_code == 200
    return response, b"".join(response.streaming_content).decode()


def rows(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def test_a_failed_sign_in_named_like_a_formula_is_not_a_formula_in_the_csv(auditor_api):
    cache.clear()
    Client(REMOTE_ADDR="10.9.9.9").post("/accounts/login/", {"username": HYPERLINK, "password": "x"})
    _, text = download(auditor_api)
    cells = [cell for row in rows(text) for cell in row]
    assert not [cell for cell in cells if cell.startswith(TRIGGERS)]
    assert any(cell.startswith("'=hyperlink(") for cell in cells)  # the sign-in name, shown as text


@pytest.mark.parametrize("name", ["=1+1", "+1", "-1+2", "@SUM(A1)", "\t=1+1", "\r=1+1"])
def test_every_column_is_neutralised(auditor_api, name):
    owner = UserFactory(username="=owner")  # a name in the actor column too
    asset = AssetFactory(name="fraud")
    assign_perm("registry.contribute_asset", owner, asset)
    services.evaluation_add(
        actor=owner, source=Source.cli(), version=VersionFactory(asset=asset), name=name, metrics={"auc": 0.9}
    )
    _, text = download(auditor_api)
    (event,) = [row for row in rows(text) if row[4:5] == ["evaluation.added"]]
    record = dict(zip(CSV_HEADER, event, strict=True))
    assert record["target"] == f"'{name} of model/fraud@1"
    assert record["actor"] == "'=owner"
    assert not [cell for row in rows(text) for cell in row if cell.startswith(TRIGGERS)]


def test_the_header_is_the_first_line_and_the_notice_the_last(auditor_api):
    asset = AssetFactory(name="fraud")
    owner = UserFactory(username="mia", global_role="admin")
    services.asset_update(actor=owner, source=Source.cli(), asset=asset, description="d")
    response, text = download(auditor_api)
    table = rows(text)
    assert table[0] == CSV_HEADER
    assert table[-1] == [f"# {CSV_NOTICE}"]
    assert [row[4] for row in table[1:-1]] == ["asset.updated"]
    assert response["X-Audit-Notice"] == CSV_NOTICE
    assert "derived" in response["Content-Disposition"]


def test_spreadsheet_cell():
    assert spreadsheet_cell(7) == "7"
    assert spreadsheet_cell("model/fraud") == "model/fraud"
    assert spreadsheet_cell("-3") == "'-3"
    assert spreadsheet_cell("'=1") == "'=1"  # already text to a spreadsheet
    assert spreadsheet_cell("a=1") == "a=1"
