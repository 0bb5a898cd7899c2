"""The witness: a copy of every signed checkpoint kept outside the database (AUDIT_WITNESS_DIR).

Layout, each file written once (temporary file, fsync, rename; owner-only modes) and never changed:

    checkpoints/<tree size, 20 digits>-<root hash hex>.txt   the signed note, byte for byte as served
    forks/<UTC time>-<superseded size>.json                  an accepted fork (audit_witness_accept)
    latest.txt                                               the latest checkpoint of the current history

A restored database can rewind the log but not the witness: the checkpointer refuses to sign a log that is
not an extension of the latest witnessed checkpoint, and audit_verify checks every witnessed checkpoint
against the log. An accepted fork supersedes the witnessed checkpoints the log no longer matches; both
histories stay here.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from audit import merkle, notes


class WitnessUnavailable(Exception):
    """The witness could not be written or read: no checkpoint is published."""


@dataclass(frozen=True)
class Witnessed:
    """One witnessed checkpoint: its size, root, the note, and the file that holds it."""

    size: int
    root_hash: bytes
    note: str
    name: str

    def describe(self) -> str:
        root = self.root_hash.hex()[:16]
        return f"the witnessed checkpoint at size {self.size} (root {root}…, {self.name})"


def directory() -> Path | None:
    configured = getattr(settings, "AUDIT_WITNESS_DIR", None)
    return Path(configured) if configured else None


def _write_once(path: Path, data: bytes, *, replace: bool = False) -> None:
    """Write atomically: a temporary file in the same directory, fsync, rename, fsync the directory."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            # A link fails if the name exists: an entry is never overwritten (same checkpoint, same file).
            try:
                os.link(temporary, path)
            except FileExistsError:
                if path.read_bytes() != data:
                    raise WitnessUnavailable(f"{path} exists with other content") from None
            os.unlink(temporary)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def entry_name(size: int, root_hash: bytes) -> str:
    return f"{size:020d}-{root_hash.hex()}.txt"


def publish(note: str, size: int, root_hash: bytes) -> None:
    """Append a signed checkpoint to the witness; raise WitnessUnavailable if it cannot be written."""
    folder = directory()
    if folder is None:
        return
    try:
        _write_once(folder / "checkpoints" / entry_name(size, root_hash), note.encode())
        current = _latest_file(folder)
        superseded = superseded_keys()
        if current is None or (current.size, current.root_hash) in superseded or current.size < size:
            _write_once(folder / "latest.txt", note.encode(), replace=True)
    except OSError as exc:
        raise WitnessUnavailable(f"the witness {folder} cannot be written: {exc}") from exc


def holds(size: int, root_hash: bytes) -> bool | None:
    """Whether the witness holds the checkpoint of this size and root (None: no witness configured)."""
    folder = directory()
    if folder is None:
        return None
    return (folder / "checkpoints" / entry_name(size, root_hash)).is_file()


def _open(note: str, name: str, verifier: str | None) -> Witnessed:
    if verifier is None:
        from audit.signing import verifier_key

        verifier = verifier_key()
    try:
        opened = notes.open_checkpoint(note, verifier, origin=settings.AUDIT_LOG_ORIGIN)
    except (notes.NoteError, ValueError) as exc:
        raise WitnessUnavailable(f"the witness entry {name} does not verify: {exc}") from None
    return Witnessed(size=opened.size, root_hash=opened.root_hash, note=note, name=name)


def _latest_file(folder: Path, verifier: str | None = None) -> Witnessed | None:
    path = folder / "latest.txt"
    if not path.exists():
        return None
    entry = _open(path.read_text(), "latest.txt", verifier)
    # Named by the entry it copies, so that a refusal names the file an auditor finds under checkpoints/.
    return Witnessed(
        entry.size, entry.root_hash, entry.note, f"checkpoints/{entry_name(entry.size, entry.root_hash)}"
    )


def entries(verifier: str | None = None) -> list[Witnessed]:
    """Every witnessed checkpoint, by size (both histories after an accepted fork)."""
    folder = directory()
    if folder is None or not (folder / "checkpoints").is_dir():
        return []
    found = []
    for path in sorted((folder / "checkpoints").glob("*.txt")):
        found.append(_open(path.read_text(), f"checkpoints/{path.name}", verifier))
    return found


def forks() -> list[dict]:
    """The accepted forks, oldest first."""
    folder = directory()
    if folder is None or not (folder / "forks").is_dir():
        return []
    return [json.loads(path.read_text()) for path in sorted((folder / "forks").glob("*.json"))]


def superseded_keys() -> set[tuple[int, bytes]]:
    """(size, root) of every witnessed checkpoint that an accepted fork superseded."""
    return {
        (item["size"], bytes.fromhex(item["root_hash"])) for fork in forks() for item in fork["superseded"]
    }


def latest(verifier: str | None = None) -> Witnessed | None:
    """The latest witnessed checkpoint of the current history (not superseded by an accepted fork)."""
    folder = directory()
    if folder is None:
        return None
    try:
        superseded = superseded_keys()
        current = _latest_file(folder, verifier)
        if current is not None and (current.size, current.root_hash) not in superseded:
            return current
        live = [entry for entry in entries(verifier) if (entry.size, entry.root_hash) not in superseded]
    except (OSError, ValueError, KeyError) as exc:
        raise WitnessUnavailable(f"the witness {folder} cannot be read: {exc}") from exc
    return max(live, key=lambda entry: entry.size, default=None)


def conflict(entry: Witnessed, size: int, root_hash: bytes, tree: merkle.RangeHasher) -> str:
    """Why a log of `size` leaves with this root is not an extension of the witnessed entry, or ''."""
    if entry.size > size:
        return (
            f"the database holds {size} events, fewer than {entry.describe()}: it was restored from an "
            "older backup, or events were removed"
        )
    proof = tree.consistency_proof(entry.size, size)
    if not merkle.verify_consistency(entry.size, size, proof, entry.root_hash, root_hash):
        return f"the log is not an extension of {entry.describe()}: it was rewritten or restored"
    return ""


def record_fork(record: dict) -> str:
    """Write an accepted fork's record to the witness; its file name."""
    folder = directory()
    if folder is None:
        raise WitnessUnavailable("no witness is configured (AUDIT_WITNESS_DIR)")
    name = f"{record['accepted_at'].replace(':', '')}-{record['size']}.json"
    try:
        _write_once(folder / "forks" / name, json.dumps(record, indent=2, sort_keys=True).encode())
    except OSError as exc:
        raise WitnessUnavailable(f"the witness {folder} cannot be written: {exc}") from exc
    return f"forks/{name}"
