"""The offline verifier's single pass: the large files' digests are checked as they are read, and whatever is
wrong, the report names what checking the manifest first would name; with or without orjson."""

import hashlib
import io
import json
import subprocess
import sys
import zipfile

import pytest

from tests.audit.test_export_and_api import VERIFIER, download, history  # noqa: F401 (a fixture)
from tests.helpers import api_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def files(auditor, history):  # noqa: F811
    original = zipfile.ZipFile(
        io.BytesIO(download(api_client(auditor), "/api/v1/audit/export?format=bundle"))
    )
    return {name: original.read(name) for name in original.namelist()}


def run(
    files: dict, tmp_path, *, manifest_fixed: bool, orjson: bool = True, processes: str = "1"
) -> tuple[int, dict]:
    files = dict(files)
    manifest = json.loads(files.pop("manifest.json"))
    if manifest_fixed:
        for name, data in files.items():
            manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
        bundle.writestr("manifest.json", json.dumps(manifest))
    blocked = "'django'" + (", 'orjson'" if not orjson else "")
    code = (
        f"import runpy, sys; sys.modules.update(dict.fromkeys([{blocked}])); "
        f"sys.argv = ['verify_bundle.py', {str(path)!r}, '--processes', {processes!r}]; "
        f"runpy.run_path({str(VERIFIER)!r}, run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    report = json.loads(result.stdout or "{}")
    return result.returncode, {key: report.get(key) for key in ("status", "reason", "first_bad_seq", "file")}


def line(files: dict, seq: int, new: bytes) -> dict:
    lines = files["entries.jsonl"].split(b"\n")
    lines[seq - 1] = new
    return {**files, "entries.jsonl": b"\n".join(lines)}


def hashes_row(files: dict, seq: int, new: bytes) -> dict:
    rows = files["hashes.csv"].split(b"\n")
    rows[seq] = new
    return {**files, "hashes.csv": b"\n".join(rows)}


FAILED = "failed"
DIGEST = "file does not match its digest in the manifest"
CASES = {
    # what is changed: (is the manifest made to match, the report)
    "an entry that is not JSON": (
        lambda f: line(f, 3, b"{not json"),
        True,
        (
            1,
            {
                "status": FAILED,
                "reason": "an entry is not JSON",
                "first_bad_seq": None,
                "file": "entries.jsonl",
            },
        ),
    ),
    "an entry that is not JSON, the manifest not matching": (
        lambda f: line(f, 3, b"{not json"),
        False,
        (1, {"status": FAILED, "reason": DIGEST, "first_bad_seq": None, "file": "entries.jsonl"}),
    ),
    "an entry whose seq is beyond 64 bits": (
        lambda f: line(f, 3, b'{"seq":18446744073709551616}'),
        True,
        (
            1,
            {
                "status": FAILED,
                "reason": "missing: expected seq 3, found seq 18446744073709551616",
                "first_bad_seq": 3,
                "file": None,
            },
        ),
    ),
    "an entry whose seq is true": (
        lambda f: line(f, 1, b'{"seq":true}'),
        True,
        (
            1,
            {
                "status": FAILED,
                "reason": "altered: leaf or chain hash differs from hashes.csv",
                "first_bad_seq": True,
                "file": None,
            },
        ),
    ),
    "an entry with no seq": (
        lambda f: line(f, 2, b'{"seq":"2"}'),
        True,
        (
            1,
            {
                "status": FAILED,
                "reason": "an entry has no seq",
                "first_bad_seq": None,
                "file": "entries.jsonl",
            },
        ),
    ),
    "no newline at the end": (
        lambda f: {**f, "entries.jsonl": f["entries.jsonl"][:-1]},
        True,
        (
            1,
            {
                "status": FAILED,
                "reason": "entries.jsonl does not end with a newline",
                "first_bad_seq": None,
                "file": "entries.jsonl",
            },
        ),
    ),
    "a row of hashes.csv": (
        lambda f: hashes_row(f, 4, b"4," + b"0" * 64 + b"," + b"0" * 64),
        True,
        (
            1,
            {
                "status": FAILED,
                "reason": "altered: leaf or chain hash differs from hashes.csv",
                "first_bad_seq": 4,
                "file": None,
            },
        ),
    ),
    "only the header of hashes.csv, which nothing but the manifest covers": (
        lambda f: hashes_row(f, 0, b"seq,leaf,chain"),
        False,
        (1, {"status": FAILED, "reason": DIGEST, "first_bad_seq": None, "file": "hashes.csv"}),
    ),
    "hashes.csv with CRLF line ends": (
        lambda f: {**f, "hashes.csv": f["hashes.csv"].replace(b"\n", b"\r\n")},
        True,
        (0, {"status": "verified", "reason": None, "first_bad_seq": None, "file": None}),
    ),
    "entries.jsonl and the verifier, the manifest not matching": (
        lambda f: {**line(f, 3, b"{}"), "verifier/notes.py": b"# nothing"},
        False,
        (1, {"status": FAILED, "reason": DIGEST, "first_bad_seq": None, "file": "entries.jsonl"}),
    ),
    "a signed checkpoint and entries.jsonl, the manifest not matching": (
        lambda f: {**line(f, 3, b"{}"), "checkpoint.txt": f["checkpoint.txt"].replace(b"\n10\n", b"\n9\n")},
        False,
        (1, {"status": FAILED, "reason": DIGEST, "first_bad_seq": None, "file": "checkpoint.txt"}),
    ),
    "two entries swapped (their hashes differ from hashes.csv as well)": (
        lambda f: line(line(f, 2, f["entries.jsonl"].split(b"\n")[2]), 3, f["entries.jsonl"].split(b"\n")[1]),
        True,
        (
            1,
            {
                "status": FAILED,
                "reason": "missing: expected seq 2, found seq 3",
                "first_bad_seq": 2,
                "file": None,
            },
        ),
    ),
    "a row of hashes.csv before an entry that is not JSON": (
        lambda f: hashes_row(line(f, 4, b"{not json"), 2, b"2," + b"0" * 64 + b"," + b"0" * 64),
        True,
        (
            1,
            {
                "status": FAILED,
                "reason": "altered: leaf or chain hash differs from hashes.csv",
                "first_bad_seq": 2,
                "file": None,
            },
        ),
    ),
    "nothing": (
        lambda f: f,
        False,
        (0, {"status": "verified", "reason": None, "first_bad_seq": None, "file": None}),
    ),
}


@pytest.mark.parametrize("processes", ["1", "2"], ids=["one-process", "seqs-read-beside"])
@pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "standard-library"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_report_names_the_first_problem(files, tmp_path, case, orjson, processes):
    change, manifest_fixed, expected = CASES[case]
    found = run(change(files), tmp_path, manifest_fixed=manifest_fixed, orjson=orjson, processes=processes)
    assert found == expected
