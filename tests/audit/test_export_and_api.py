"""Exports (CSV, JSON Lines, verifiable bundle), the offline verifier, and the audit API."""

import base64
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from accounts.models import Scope
from audit import merkle, notes
from audit.log import checkpoint_make
from audit.models import AuditEvent
from core.source import Source
from registry import services
from tests.factories import AssetFactory, TokenFactory
from tests.helpers import api_client

pytestmark = pytest.mark.django_db
VERIFIER = Path(__file__).resolve().parents[2] / "audit" / "verify_bundle.py"
ORIGIN = "model-registry.local/audit/v1"


@pytest.fixture
def auditor_api(auditor):
    return api_client(auditor)


@pytest.fixture
def history(admin):
    fraud = AssetFactory(name="fraud")
    other = AssetFactory(name="other")
    for index in range(5):
        services.asset_update(actor=admin, source=Source.cli(), asset=fraud, description=f"f{index}")
        services.asset_update(actor=admin, source=Source.cli(), asset=other, description=f"o{index}")
    return fraud


def download(client, url) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


def run_verifier(path, *args):
    """Run the verifier with Django made unimportable: it needs the standard library and cryptography only."""
    code = (
        "import runpy, sys; sys.modules['django'] = None; "
        f"sys.argv = ['verify_bundle.py', {str(path)!r}, *{list(args)!r}]; "
        f"runpy.run_path({str(VERIFIER)!r}, run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return result.returncode, json.loads(result.stdout or "{}"), result.stderr


def test_complete_bundle_verifies_offline(auditor_api, history, tmp_path):
    path = tmp_path / "bundle.zip"
    path.write_bytes(download(auditor_api, "/api/v1/audit/export?format=bundle"))
    key = auditor_api.get("/api/v1/audit/checkpoint").json()["verifier_key"]
    code, report, stderr = run_verifier(path, "--key", key)
    assert code == 0, (report, stderr)
    assert (report["complete"], report["events"], report["tree_size"]) == (True, 10, 10)


def test_bundle_with_one_byte_changed_fails(auditor_api, history, tmp_path):
    original = zipfile.ZipFile(io.BytesIO(download(auditor_api, "/api/v1/audit/export?format=bundle")))
    path = tmp_path / "tampered.zip"
    with zipfile.ZipFile(path, "w") as tampered:
        for item in original.infolist():
            data = original.read(item.filename)
            if item.filename == "entries.jsonl":
                data = data.replace(b'"f2"', b'"f3"', 1)
            tampered.writestr(item.filename, data)
    code, report, _ = run_verifier(path)
    assert code == 1
    assert report["file"] == "entries.jsonl"


def test_rewritten_bundle_is_caught_by_the_signature(auditor_api, history, tmp_path):
    """A forger who also fixes the manifest and hashes.csv is stopped by the signed root."""
    import hashlib

    original = zipfile.ZipFile(io.BytesIO(download(auditor_api, "/api/v1/audit/export?format=bundle")))
    files = {name: original.read(name) for name in original.namelist()}
    files["entries.jsonl"] = files["entries.jsonl"].replace(b'"f2"', b'"f3"', 1)
    lines = files["entries.jsonl"].splitlines()
    chain, rows = bytes(32), ["seq,leaf_hash,chain_hash"]
    for seq, line in enumerate(lines, start=1):
        leaf = merkle.leaf_hash(line)
        chain = hashlib.sha256(b"\x02" + chain + leaf).digest()
        rows.append(f"{seq},{leaf.hex()},{chain.hex()}")
    files["hashes.csv"] = ("\n".join(rows) + "\n").encode()
    manifest = json.loads(files.pop("manifest.json"))
    for name, data in files.items():
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    path = tmp_path / "forged.zip"
    with zipfile.ZipFile(path, "w") as forged:
        for name, data in files.items():
            forged.writestr(name, data)
        forged.writestr("manifest.json", json.dumps(manifest))
    code, report, _ = run_verifier(path)
    assert code == 1
    assert report["first_bad_seq"] == 10 and "Merkle root" in report["reason"]


def test_filtered_bundle_carries_inclusion_proofs(auditor_api, history, tmp_path):
    path = tmp_path / "fraud.zip"
    path.write_bytes(download(auditor_api, "/api/v1/audit/export?format=bundle&asset=model/fraud"))
    code, report, stderr = run_verifier(path)
    assert code == 0, (report, stderr)
    assert (report["complete"], report["events"]) == (False, 5)


def test_wrong_key_fails(auditor_api, history, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = tmp_path / "bundle.zip"
    path.write_bytes(download(auditor_api, "/api/v1/audit/export?format=bundle"))
    stranger = notes.verifier_key(ORIGIN, Ed25519PrivateKey.generate().public_key())
    code, report, _ = run_verifier(path, "--key", stranger)
    assert code == 1 and "signature invalid" in report["reason"]


def test_jsonl_lines_are_the_hashed_bytes(auditor_api, history):
    lines = download(auditor_api, "/api/v1/audit/export?format=jsonl").splitlines()
    assert [merkle.leaf_hash(line) for line in lines] == [
        bytes(h) for h in AuditEvent.objects.order_by("seq").values_list("leaf_hash", flat=True)
    ]


def test_csv_says_it_is_not_authoritative(auditor_api, history):
    response = auditor_api.get("/api/v1/audit/export?format=csv&asset=model/fraud")
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("seq,occurred_at,")
    assert text.strip().splitlines()[-1].startswith('"# NOT AUTHORITATIVE')
    assert "NOT AUTHORITATIVE" in response["X-Audit-Notice"]
    assert "derived" in response["Content-Disposition"]
    assert len(text.strip().splitlines()) == 1 + 5 + 1


def test_events_api_filters(auditor_api, history):
    body = auditor_api.get("/api/v1/audit/events?asset=model/fraud&action=asset.updated").json()
    assert [event["changes"]["after"]["description"] for event in body["results"]] == [
        f"f{i}" for i in range(5)
    ]
    assert auditor_api.get("/api/v1/audit/events?actor=nobody").json()["results"] == []
    assert auditor_api.get("/api/v1/audit/events?since=garbage").status_code == 400


@pytest.mark.parametrize("rows", [5, 40])
def test_events_api_query_count(auditor_api, admin, django_assert_num_queries, rows):
    asset = AssetFactory()
    for index in range(rows):
        services.asset_update(actor=admin, source=Source.cli(), asset=asset, description=f"d{index}")
    with django_assert_num_queries(1):  # one page of events
        assert auditor_api.get("/api/v1/audit/events").status_code == 200


def test_proofs_verify_against_the_signed_checkpoints(auditor_api, history, admin):
    first = checkpoint_make(origin=ORIGIN)
    for index in range(300):  # past a stored 256-leaf subtree
        services.asset_update(actor=admin, source=Source.cli(), asset=history, description=f"g{index}")
    second = checkpoint_make(origin=ORIGIN)
    checkpoint = auditor_api.get("/api/v1/audit/checkpoint").json()
    opened = notes.open_checkpoint(checkpoint["note"], checkpoint["verifier_key"], origin=ORIGIN)
    assert opened.size == second.tree_size == 310
    for seq in (1, 7, 257, 310):
        proof = auditor_api.get(f"/api/v1/audit/proof/inclusion?seq={seq}").json()
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        leaf = merkle.leaf_hash(base64.b64decode(proof["body"]))
        assert merkle.verify_inclusion(seq - 1, opened.size, leaf, hashes, opened.root_hash)
    consistency = auditor_api.get(f"/api/v1/audit/proof/consistency?from={first.tree_size}&to=310").json()
    hashes = [base64.b64decode(h) for h in consistency["hashes"]]
    assert merkle.verify_consistency(10, 310, hashes, bytes(first.root_hash), opened.root_hash)
    assert auditor_api.get("/api/v1/audit/proof/inclusion?seq=999").status_code == 400
    assert auditor_api.get("/api/v1/audit/proof/consistency?from=11&to=310").status_code == 404


def test_export_command_streams_to_a_file(history, tmp_path, capsys):
    from django.core.management import call_command

    out = tmp_path / "log.jsonl"
    call_command("audit_export", "--format", "jsonl", "--asset", "model/other", "--out", str(out))
    assert len(out.read_bytes().splitlines()) == 5
    bundle = tmp_path / "all.zip"
    call_command("audit_export", "--format", "bundle", "--out", str(bundle))
    assert run_verifier(bundle)[0] == 0


def test_export_honours_the_target_filter(auditor_api, history):
    target = f"registry.asset:{history.pk}"
    lines = download(auditor_api, f"/api/v1/audit/export?format=jsonl&target={target}").splitlines()
    events = auditor_api.get(f"/api/v1/audit/events?target={target}").json()["results"]
    assert len(lines) == len(events) == 5


def test_audit_routes_need_the_read_scope_and_the_auditor_role(history, auditor, outsider):
    write_only = TokenFactory(account=auditor, scopes=[Scope.WRITE]).token
    reader = TokenFactory(account=auditor, scopes=[Scope.READ]).token
    outsider_reader = TokenFactory(account=outsider, scopes=[Scope.READ]).token

    def get(token):
        return api_client(token=token).get("/api/v1/audit/events")

    refused = get(write_only)
    assert refused.status_code == 403 and refused.json()["type"] == "insufficient-scope"
    assert get(outsider_reader).status_code == 403
    assert get(reader).status_code == 200
