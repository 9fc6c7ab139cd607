"""Optional encryption of recordings at rest: AES-256-GCM (PyCA ``cryptography``), key from ``IVR_RECORDINGS_KEY``.

Why AES-GCM rather than Fernet: it is authenticated like Fernet but writes raw bytes (Fernet base64-encodes,
a third more disk for hours of audio, and uses AES-CBC plus HMAC: two passes); and its associated data binds a
file to its call, so two encrypted recordings swapped on the disk fail to decrypt instead of playing the wrong
call. A sealed file is ``MAGIC | 12-byte nonce | ciphertext+tag``; the player decrypts it in memory, never to disk.

The key is 32 random bytes, written as URL-safe base64 (``ivr recordings keygen`` prints one). Losing it loses
the encrypted recordings: keep it where the other secrets are kept.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["MAGIC", "BadKey", "CannotDecrypt", "is_sealed", "new_key", "parse_key", "seal", "unseal"]

MAGIC = b"IVRREC1\x00"
"""The first bytes of an encrypted recording."""
NONCE_BYTES = 12


class BadKey(ValueError):
    """IVR_RECORDINGS_KEY is not 32 bytes of URL-safe base64."""


class CannotDecrypt(Exception):
    """Wrong key, a changed byte, or a file of another call."""


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")


def parse_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise BadKey("IVR_RECORDINGS_KEY: not URL-safe base64 (ivr recordings keygen prints a key)") from None
    if len(key) != 32:
        raise BadKey(f"IVR_RECORDINGS_KEY: {len(key)} bytes, AES-256 needs 32 (ivr recordings keygen prints a key)")
    return key


def is_sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def seal(data: bytes, key: bytes, call_id: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, data, call_id.encode("utf-8"))


def unseal(blob: bytes, key: bytes, call_id: str) -> bytes:
    if not is_sealed(blob):
        raise CannotDecrypt("not an encrypted recording")
    nonce = blob[len(MAGIC):len(MAGIC) + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES:], call_id.encode("utf-8"))
    except InvalidTag:
        raise CannotDecrypt(f"the recording of call {call_id} does not decrypt with this key (wrong key, a changed "
                            f"byte, or another call's file)") from None
