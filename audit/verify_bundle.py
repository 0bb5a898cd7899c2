#!/usr/bin/env python3
"""Verify an audit-log export bundle offline: Python's standard library and `cryptography` only.

    python verify_bundle.py audit-bundle.zip --key "<verifier key>" [--origin ORIGIN]

The verifier key is the one your registry's operators gave you (manage.py audit_keygen --show); without
--key the bundle's own verifier-key.txt is used, which proves integrity but not who signed.

Checks: every file against manifest.json; the Ed25519 signature of every checkpoint; for a complete
bundle, every event's leaf hash, the hash chain, and the Merkle root at every checkpoint; for a filtered
bundle, every event's inclusion proof against the signed checkpoint.

Exit status: 0 verified, 1 tampered or inconsistent (the report names the first bad seq or file),
2 usage or read error. The report is JSON on stdout.

Where `orjson` is installed it reads the entries faster (the answer is the same: whatever orjson does not
read as an object with an integer seq is read again with the standard library's json).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import merkle
import notes

try:
    import orjson
except ImportError:  # optional: the standard library's json gives the same answers, more slowly
    orjson = None

KNOWN = {"manifest.json", "verifier-key.txt", "checkpoint.txt", "entries.jsonl", "hashes.csv", "proofs.jsonl"}
STREAMED = ("entries.jsonl", "hashes.csv")  # their manifest digests are computed as they are verified
PIECE = 1 << 20


class Tampered(Exception):
    def __init__(self, reason: str, seq: int | None = None, file: str | None = None):
        super().__init__(reason)
        self.reason, self.seq, self.file = reason, seq, file


def _sha256(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with archive.open(name) as member:
        while chunk := member.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def check_manifest(archive: zipfile.ZipFile, streamed: tuple[str, ...] = ()) -> dict:
    """The manifest, once every file is listed and every listed file matches its digest (but the `streamed`
    ones, which `verify` checks as it reads them)."""
    manifest = json.loads(archive.read("manifest.json"))
    listed = set(manifest["files"])
    present = {name for name in archive.namelist() if not name.endswith("/")} - {"manifest.json"}
    for name in sorted(present - listed):
        raise Tampered("file not in the manifest", file=name)
    for name in sorted(listed - present):
        raise Tampered("file in the manifest is missing", file=name)
    for name in sorted(listed):
        if not (name in KNOWN or name.startswith(("checkpoints/", "verifier/"))):
            raise Tampered("unexpected file", file=name)
        if name in streamed:
            continue
        try:
            _check_digest(manifest, name, *_sha256(archive, name))
        except Tampered:
            if streamed:  # a streamed file earlier in the order may differ too: name the first
                check_manifest(archive)
            raise
    return manifest


def _check_digest(manifest: dict, name: str, digest: str, size: int) -> None:
    if digest != manifest["files"][name]["sha256"] or size != manifest["files"][name]["bytes"]:
        raise Tampered("file does not match its digest in the manifest", file=name)


class _Member:
    """The lines of a file of the bundle, without their newline, read in large pieces; its SHA-256 and size
    as it is read (`digest` once it is read to the end).

    A thread inflates and hashes the pieces (zlib and hashlib let go of the GIL for large buffers) while
    the caller checks the lines of the piece before.
    """

    def __init__(self, archive: zipfile.ZipFile, name: str, sink=None) -> None:
        self.archive, self.name, self.sink = archive, name, sink
        self.sha256, self.size, self.digest = hashlib.sha256(), 0, None
        self.unterminated = False  # the last line has no newline (it is yielded all the same)

    def _read(self, pieces: queue.Queue, stop: threading.Event) -> None:
        try:
            with self.archive.open(self.name) as member:
                while not stop.is_set() and (piece := member.read(PIECE)):
                    self.sha256.update(piece)
                    self.size += len(piece)
                    if self.sink is not None:
                        self._send(piece)
                    pieces.put(piece)
        except BaseException as exc:  # raised in the caller's thread
            pieces.put(exc)
        else:
            pieces.put(None)
        finally:
            self._send(None)

    def _send(self, piece: bytes | None) -> None:
        """The piece to the sink (a pipe: the write lets go of the GIL), or the end of the file."""
        if self.sink is None:
            return
        try:
            if piece is None:
                self.sink.close()
            else:
                self.sink.write(piece)
        except (OSError, ValueError):  # the seq reader is gone: the caller walks again without it
            self.sink = None

    def lines(self):
        pieces, stop, tail = queue.Queue(maxsize=2), threading.Event(), b""
        reader = threading.Thread(target=self._read, args=(pieces, stop), daemon=True)
        reader.start()
        try:
            while (piece := pieces.get()) is not None:
                if isinstance(piece, BaseException):
                    raise piece
                lines = (tail + piece).split(b"\n")
                tail = lines.pop()
                yield from lines
        finally:
            stop.set()
            while reader.is_alive():  # unblock a put, so that the reader sees `stop`
                with contextlib.suppress(queue.Empty):
                    pieces.get(timeout=0.05)
            reader.join()
        self.digest = (self.sha256.hexdigest(), self.size)
        if tail:
            self.unterminated = True
            yield tail

    def drain(self, lines) -> tuple[str, int]:
        for _ in lines:
            pass
        return self.digest


def _checkpoints(archive, key: str, origin: str) -> tuple[notes.Checkpoint | None, dict[int, bytes]]:
    def opened(name: str) -> notes.Checkpoint:
        try:
            return notes.open_checkpoint(archive.read(name).decode(), key, origin=origin)
        except (notes.NoteError, ValueError) as exc:
            raise Tampered(f"signature invalid: {exc}", file=name) from None

    final = opened("checkpoint.txt") if "checkpoint.txt" in archive.namelist() else None
    roots = {}
    for name in archive.namelist():
        if name.startswith("checkpoints/"):
            checkpoint = opened(name)
            if checkpoint.size in roots and roots[checkpoint.size] != checkpoint.root_hash:
                raise Tampered(f"two signed checkpoints disagree about size {checkpoint.size}", file=name)
            roots[checkpoint.size] = checkpoint.root_hash
    if final is not None:
        roots[final.size] = final.root_hash
    return final, roots


def _read(line: bytes) -> int:
    """The entry's seq, read with the standard library (what orjson could not read, or not as an int)."""
    try:
        body = json.loads(line)
    except ValueError:
        raise Tampered("an entry is not JSON", file="entries.jsonl") from None
    if not isinstance(body, dict) or not isinstance(body.get("seq"), int):
        raise Tampered("an entry has no seq", file="entries.jsonl")
    return body["seq"]


def _entries(entries: _Member) -> iter:
    """(seq, line) of every entry; orjson reads big integers as floats, so those too go to `_read`."""
    quick = orjson.loads if orjson is not None else json.loads
    failure = orjson.JSONDecodeError if orjson is not None else ValueError
    for line in entries.lines():
        if entries.unterminated:
            raise Tampered("entries.jsonl does not end with a newline", file="entries.jsonl")
        try:
            body = quick(line)
        except failure:
            body = None
        if type(body) is dict and type(seq := body.get("seq")) is int:
            yield seq, line
        else:
            yield _read(line), line


def _same(row: bytes, seq: int, leaf: bytes, chain: bytes) -> bool:
    """The row says these hashes, written otherwise than the export writes it (spaces, CRLF)."""
    return row.decode().strip().split(",") == [str(seq), leaf.hex(), chain.hex()]


def verify_complete(archive, final, roots, members: dict, seqs: SeqReader | None = None) -> int:
    if seqs is not None:
        return _verify_complete_beside(archive, final, roots, members, seqs)
    tree, chain, count = merkle.CompactRange(), bytes(32), 0
    sha256, hexlify = hashlib.sha256, binascii.hexlify
    rows = None
    if "hashes.csv" in archive.namelist():
        members["hashes.csv"] = _Member(archive, "hashes.csv")
        rows = members["hashes.csv"].lines()
        next(rows, None)  # the header
    for seq, line in _entries(members["entries.jsonl"]):
        count += 1
        if seq != count:
            reason = "missing" if seq > count else "reordered"
            raise Tampered(f"{reason}: expected seq {count}, found seq {seq}", seq=count)
        leaf = sha256(b"\x00" + line).digest()
        chain = sha256(b"\x02" + chain + leaf).digest()
        if rows is not None:
            row = next(rows, b"")
            if row != b"%d,%b" % (seq, hexlify(leaf + chain, b",", 32)) and not _same(row, seq, leaf, chain):
                raise Tampered("altered: leaf or chain hash differs from hashes.csv", seq=seq)
        tree.push(leaf)
        if seq in roots and tree.root() != roots[seq]:
            raise Tampered(f"altered: the Merkle root at {seq} differs from its signed checkpoint", seq=seq)
    size = final.size if final else 0
    if count != size:
        raise Tampered(
            f"missing: the checkpoint covers {size} events, the bundle holds {count}", seq=count + 1
        )
    if rows is not None:
        members["hashes.csv"].drain(rows)
    return count


def _verify_complete_beside(archive, final, roots, members: dict, seqs: SeqReader) -> int:
    """verify_complete with every entry's seq read by another process (SeqReader) from the same bytes: this
    loop hashes and compares, and whatever it finds wrong at line n gives way to a seq problem the other
    found at or before n, so that the first problem is named as one loop names it."""
    tree, chain, count = merkle.CompactRange(), bytes(32), 0
    sha256, hexlify, push = hashlib.sha256, binascii.hexlify, tree.push
    rows = None
    if "hashes.csv" in archive.namelist():
        members["hashes.csv"] = _Member(archive, "hashes.csv")
        rows = members["hashes.csv"].lines()
        next(rows, None)  # the header
    lines = members["entries.jsonl"].lines()
    try:
        for line in lines:
            count += 1
            leaf = sha256(b"\x00" + line).digest()
            chain = sha256(b"\x02" + chain + leaf).digest()
            if rows is not None:
                row = next(rows, b"")
                if row != b"%d,%b" % (count, hexlify(leaf + chain, b",", 32)) and not _same(
                    row, count, leaf, chain
                ):
                    raise Tampered("altered: leaf or chain hash differs from hashes.csv", seq=count)
            push(leaf)
            if count in roots and tree.root() != roots[count]:
                raise Tampered(
                    f"altered: the Merkle root at {count} differs from its signed checkpoint", seq=count
                )
    except BaseException as exc:
        lines.close()  # the reader stops and ends the pipe: the seq reader answers
        seqs.raise_first(count)  # a seq problem at or before this line comes first
        if isinstance(exc, Tampered) and exc.seq == 1 and seqs.result()["first_is_true"]:
            exc.seq = True  # the first entry says `"seq": true`, which equals 1: named as it says
        raise
    seqs.raise_first(count)
    size = final.size if final else 0
    if count != size:
        raise Tampered(
            f"missing: the checkpoint covers {size} events, the bundle holds {count}", seq=count + 1
        )
    if rows is not None:
        members["hashes.csv"].drain(rows)
    return count


class SeqReader:
    """Another process that reads every entry's seq (the JSON parse, the costly part of a line) from the
    bytes of entries.jsonl piped to it as they are inflated, and names the first line whose seq is wrong,
    as `_entries` and the loop of verify_complete would."""

    def __init__(self) -> None:
        here = str(Path(__file__).resolve().parent)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {here!r}); import verify_bundle; verify_bundle.read_seqs()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.sink = self.process.stdin
        self.outcome = None

    def result(self) -> dict:
        if self.outcome is None:
            out = self.process.stdout.read()
            self.process.wait()
            self.outcome = json.loads(out) if self.process.returncode == 0 else {}
            if "lines" not in self.outcome:
                raise SeqReaderFailed()
        return self.outcome

    def raise_first(self, count: int) -> None:
        """Raise the seq problem found at line `count` or before it, if any."""
        failure = self.result()["failure"]
        if failure is not None and failure["line"] <= count:
            raise Tampered(failure["reason"], seq=failure["seq"], file=failure["file"])

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.sink.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()


class SeqReaderFailed(Exception):
    """The seq reader gave no answer: the bundle is checked again in one process."""


def read_seqs() -> None:
    """SeqReader's process: entries.jsonl on stdin; {"lines": n, "failure": null | {...}, "first_is_true"}
    on stdout."""
    failure, count, first_is_true = None, 0, False

    class Piped:  # what _entries needs of a _Member: lines, and whether the last one ended
        unterminated = False

        def lines(self):
            tail, stdin = b"", sys.stdin.buffer
            while piece := stdin.read(PIECE):
                lines = (tail + piece).split(b"\n")
                tail = lines.pop()
                yield from lines
            if tail:
                self.unterminated = True
                yield tail

    try:
        for seq, _line in _entries(Piped()):
            count += 1
            if seq != count:
                reason = "missing" if seq > count else "reordered"
                raise Tampered(f"{reason}: expected seq {count}, found seq {seq}", seq=count)
            first_is_true = first_is_true or seq is True
    except Tampered as exc:
        failure = {"line": count + (exc.seq is None), "reason": exc.reason, "seq": exc.seq, "file": exc.file}
        with contextlib.suppress(OSError):
            while sys.stdin.buffer.read(PIECE):  # the rest, so that the writer is not blocked
                pass
    print(json.dumps({"lines": count, "failure": failure, "first_is_true": first_is_true}))


def verify_filtered(archive, final, members: dict) -> int:
    if final is None:
        raise Tampered("a filtered bundle needs a checkpoint", file="checkpoint.txt")
    count = 0
    with archive.open("proofs.jsonl") as proofs:
        for seq, line in _entries(members["entries.jsonl"]):
            proof = json.loads(proofs.readline() or b"null")
            if not proof or proof["seq"] != seq or proof["tree_size"] != final.size:
                raise Tampered("the proof does not belong to this entry", seq=seq)
            path = [base64.b64decode(item) for item in proof["hashes"]]
            if not merkle.verify_inclusion(
                seq - 1, final.size, merkle.leaf_hash(line), path, final.root_hash
            ):
                raise Tampered("altered: the entry is not in the signed tree", seq=seq)
            count += 1
        if proofs.readline():
            raise Tampered("more proofs than entries", file="proofs.jsonl")
    return count


SPLIT_FROM = 20 << 20  # bytes of entries.jsonl from which, by default, another process reads the seqs


def verify(path: str, key: str | None, origin: str | None, processes: int | None = None) -> dict:
    try:
        return _verify(path, key, origin, processes)
    except SeqReaderFailed:
        return _verify(path, key, origin, 1)


def _verify(path: str, key: str | None, origin: str | None, processes: int | None) -> dict:
    started = time.perf_counter()
    with zipfile.ZipFile(path) as archive:
        # One pass over the large files: their digests are checked after the events were. Should anything
        # fail first, every file is checked against the manifest before saying so, so that the report names
        # the same first problem as checking the manifest first would.
        manifest = check_manifest(archive, streamed=STREAMED)
        try:
            key = key or archive.read("verifier-key.txt").decode().strip()
            origin = origin or manifest["origin"]
            final, roots = _checkpoints(archive, key, origin)
            complete = manifest["complete"]
            seqs = _seq_reader(archive, processes) if complete else None
            try:
                members = {"entries.jsonl": _Member(archive, "entries.jsonl", seqs and seqs.sink)}
                if complete:
                    count = verify_complete(archive, final, roots, members, seqs)
                else:
                    count = verify_filtered(archive, final, members)
            finally:
                if seqs is not None:
                    seqs.close()
            for name in sorted(set(STREAMED) & set(manifest["files"])):
                member = members.get(name)
                digest = member.digest if member is not None and member.digest else _sha256(archive, name)
                _check_digest(manifest, name, *digest)
            if final is not None and base64.b64encode(final.root_hash).decode() != manifest["root_hash"]:
                raise Tampered(
                    "the manifest's root hash differs from the signed checkpoint", file="manifest.json"
                )
        except SeqReaderFailed:
            raise
        except Exception:
            check_manifest(archive)
            raise
    seconds = time.perf_counter() - started
    return {
        "status": "verified",
        "origin": origin,
        "complete": complete,
        "events": count,
        "tree_size": final.size if final else 0,
        "root_hash": base64.b64encode(final.root_hash).decode() if final else None,
        "checkpoints_verified": len(roots),
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds) if seconds else None,
    }


def _seq_reader(archive, processes: int | None) -> SeqReader | None:
    """A SeqReader when it pays: --processes above 1, or by default a large bundle and two CPUs."""
    if processes is None:
        big = (
            "entries.jsonl" in archive.namelist() and archive.getinfo("entries.jsonl").file_size >= SPLIT_FROM
        )
        processes = 2 if big and (os.cpu_count() or 1) > 1 else 1
    if processes < 2:
        return None
    try:
        return SeqReader()
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--key", help="the verifier key you trust (<name>+<key id>+<base64 key>)")
    parser.add_argument("--origin", help="the log origin you expect (default: the manifest's)")
    parser.add_argument(
        "--processes",
        type=int,
        help="2: another process reads the entries' seqs (default for a bundle of 20 MiB of entries or more "
        "on two CPUs or more); 1: this one alone",
    )
    args = parser.parse_args(argv)
    try:
        report = verify(args.bundle, args.key, args.origin, args.processes)
    except Tampered as exc:
        print(
            json.dumps({"status": "failed", "reason": exc.reason, "first_bad_seq": exc.seq, "file": exc.file})
        )
        return 1
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        print(json.dumps({"status": "error", "reason": f"{type(exc).__name__}: {exc}"}))
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
