"""C2SP tlog-checkpoints signed as Ed25519 signed notes (the format of Go's checksum database and Sigstore).

Note text: "<origin>\\n<tree size>\\n<base64 root hash>\\n"; then a blank line and one signature line
"— <key name> <base64(4-byte key id ‖ 64-byte signature)>\\n". The key id is the first four bytes of
SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ public key). Stand-alone: stdlib plus `cryptography`, no Django.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = b"\x01"
DASH = "\u2014"


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public_key).digest()[:4]


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verifier_key(name: str, key: Ed25519PublicKey) -> str:
    """Go's note verifier string: <name>+<8-hex key id>+<base64(0x01 ‖ public key)>."""
    raw = public_bytes(key)
    return f"{name}+{key_id(name, raw).hex()}+{base64.b64encode(ED25519 + raw).decode()}"


def parse_verifier_key(text: str) -> tuple[str, bytes, Ed25519PublicKey]:
    name, hex_id, encoded = text.strip().split("+", 2)  # names hold no "+"; base64 may
    raw = base64.b64decode(encoded)
    if raw[:1] != ED25519 or len(raw) != 33:
        raise ValueError("not an Ed25519 verifier key")
    if key_id(name, raw[1:]).hex() != hex_id:
        raise ValueError("verifier key id does not match its name and key")
    return name, bytes.fromhex(hex_id), Ed25519PublicKey.from_public_bytes(raw[1:])


def checkpoint_text(origin: str, size: int, root_hash: bytes) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(root_hash).decode()}\n"


def sign(text: str, name: str, key: Ed25519PrivateKey) -> str:
    if "\n\n" in text or not text.endswith("\n"):
        raise ValueError("note text must end with a newline and contain no blank line")
    signature = key.sign(text.encode())
    kid = key_id(name, public_bytes(key.public_key()))
    return f"{text}\n{DASH} {name} {base64.b64encode(kid + signature).decode()}\n"


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    text: str


class NoteError(ValueError):
    """The note is malformed or no trusted signature verifies it."""


def open_checkpoint(note: str, verifier: str, *, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint with the verifier key; return its origin, size and root."""
    name, kid, public = parse_verifier_key(verifier)
    if any(ord(char) < 0x20 and char != "\n" for char in note):
        raise NoteError("note contains control characters")
    text, separator, signatures = note.rpartition("\n\n")
    if not separator:
        raise NoteError("note has no signature block")
    text += "\n"
    verified = False
    for line in signatures.splitlines():
        prefix = f"{DASH} {name} "
        if not line.startswith(prefix):
            continue  # another signer's line: ignored, as the spec requires
        blob = base64.b64decode(line[len(prefix) :])
        if blob[:4] != kid:
            continue
        try:
            public.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise NoteError("the signature of the trusted key does not verify") from None
        verified = True
    if not verified:
        raise NoteError("no signature by the trusted key")
    lines = text.splitlines()
    if len(lines) < 3 or not lines[1].isdigit() or (lines[1] != "0" and lines[1].startswith("0")):
        raise NoteError("not a checkpoint: origin, size and root hash lines expected")
    root_hash = base64.b64decode(lines[2], validate=True)
    if len(root_hash) != 32:
        raise NoteError("root hash is not 32 bytes")
    if origin is not None and lines[0] != origin:
        raise NoteError(f"checkpoint is for origin {lines[0]!r}, not {origin!r}")
    return Checkpoint(origin=lines[0], size=int(lines[1]), root_hash=root_hash, text=text)
