"""Signatures on ledger events: Ed25519 with the city's signing key (decision note 0013).

A run record's `run_sha256` proves the record and the files it lists were not changed *unless*
someone recomputed it; anyone with write access to the output root can. The signature can only be
made with the city's private signing key, which never enters the trail: it comes from the
environment (`JIWON_SIGNING_KEY`) or a Prefect Secret block. Its public half is written beside
the trail (`audit/keys/<key id>.pem`), and an auditor checks every signature with a copy they
trust (`jiwon audit verify --public-key FILE`), without any secret.

The private key is given as 64 hex digits (the 32-byte Ed25519 seed) or as a PKCS#8 PEM block;
`jiwon keys new` makes one. The key id is the SHA-256 (hex) of the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNING_KEY_ENV = "JIWON_SIGNING_KEY"


class SigningKeyError(ValueError):
    """A signing or public key that cannot be read (never quotes the key)."""


def private_key(text: str) -> Ed25519PrivateKey:
    """Return the private key from 64 hex digits or a PEM block; SigningKeyError otherwise."""
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(text))
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise SigningKeyError(
            "is neither 64 hex digits nor an unencrypted PEM private key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError("is a PEM private key, but not an Ed25519 one")
    return key


def public_key(pem: bytes) -> Ed25519PublicKey:
    """Return the public key of a PEM file's content; SigningKeyError otherwise."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise SigningKeyError("is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError("is a PEM public key, but not an Ed25519 one")
    return key


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Return the PEM (SubjectPublicKeyInfo) of a key's public half."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Return the key id: the SHA-256 (hex) of the raw public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    """Return the signature of `data` (hex)."""
    return key.sign(data).hex()


def signed_by(key: Ed25519PublicKey, data: bytes, signature: str | None) -> bool:
    """Return whether `signature` (hex) is the key's signature of `data`."""
    if not signature or not re.fullmatch(r"[0-9a-f]{128}", signature):
        return False
    try:
        key.verify(bytes.fromhex(signature), data)
    except InvalidSignature:
        return False
    return True


def new_private_hex() -> str:
    """Return a new private key as 64 hex digits (for `jiwon keys new`)."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return raw.hex()
