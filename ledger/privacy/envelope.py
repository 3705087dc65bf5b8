"""Envelope encryption of profiles: a per-person data key (DEK) wrapped by a master key, AES-256-GCM.

Formats (both start with a version byte so that they can evolve)::

    wrapped DEK  = 0x01 || nonce (12) || AES-GCM(master key, DEK, aad = "vledger/dek/v1|cid|pid|kid")
    profile      = 0x01 || nonce (12) || AES-GCM(DEK, profile JSON, aad = "vledger/profile/v1|cid|pid")

The AAD binds each ciphertext to its community and person (and the wrapped key to its master key
id), so a ciphertext copied onto another person's row does not decrypt. Nonces are random: each DEK
encrypts a handful of profile versions in its life, far below the 2**32 messages per key limit.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.privacy.keyring import KEY_BYTES, Keyring

FORMAT_V1 = 1
NONCE_BYTES = 12
TAG_BYTES = 16


class DecryptionError(Exception):
    """A ciphertext or wrapped key did not authenticate: wrong key, wrong person, or tampered.

    The message names ids only, never data.
    """


@dataclass(frozen=True, slots=True)
class SealedProfile:
    """What a new person's row stores: the wrapped DEK, its master key id, and the profile ciphertext."""

    key_id: str
    wrapped_key: bytes
    profile_enc: bytes


def new_data_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _dek_aad(community_id: int, person_id: uuid.UUID, key_id: str) -> bytes:
    return f"vledger/dek/v{FORMAT_V1}|{community_id}|{person_id}|{key_id}".encode()


def _profile_aad(community_id: int, person_id: uuid.UUID) -> bytes:
    return f"vledger/profile/v{FORMAT_V1}|{community_id}|{person_id}".encode()


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return bytes([FORMAT_V1]) + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes, what: str) -> bytes:
    if len(sealed) < 1 + NONCE_BYTES + TAG_BYTES or sealed[0] != FORMAT_V1:
        raise DecryptionError(f"{what}: unknown format or truncated")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        raise DecryptionError(f"{what}: authentication failed") from None


def wrap_data_key(keyring: Keyring, community_id: int, person_id: uuid.UUID, dek: bytes) -> tuple[str, bytes]:
    """Wrap ``dek`` under the active master key; returns (key_id, wrapped key)."""
    assert len(dek) == KEY_BYTES
    key_id = keyring.active_key_id
    return key_id, _seal(keyring.master_key(key_id), dek, _dek_aad(community_id, person_id, key_id))


def unwrap_data_key(
    keyring: Keyring, community_id: int, person_id: uuid.UUID, key_id: str, wrapped: bytes
) -> bytes:
    """The DEK of one person. KeyringError if ``key_id`` is unknown, DecryptionError if it fails."""
    what = f"data key of person {person_id} in community {community_id}"
    dek = _open(keyring.master_key(key_id), wrapped, _dek_aad(community_id, person_id, key_id), what)
    if len(dek) != KEY_BYTES:
        raise DecryptionError(f"{what}: wrong length")
    return dek


def encrypt_profile(dek: bytes, community_id: int, person_id: uuid.UUID, plaintext: bytes) -> bytes:
    return _seal(dek, plaintext, _profile_aad(community_id, person_id))


def decrypt_profile(dek: bytes, community_id: int, person_id: uuid.UUID, ciphertext: bytes) -> bytes:
    what = f"profile of person {person_id} in community {community_id}"
    return _open(dek, ciphertext, _profile_aad(community_id, person_id), what)


def seal_new_profile(
    keyring: Keyring, community_id: int, person_id: uuid.UUID, plaintext: bytes
) -> SealedProfile:
    """A fresh DEK for a new person, wrapped, and the profile encrypted under it."""
    dek = new_data_key()
    key_id, wrapped = wrap_data_key(keyring, community_id, person_id, dek)
    return SealedProfile(key_id, wrapped, encrypt_profile(dek, community_id, person_id, plaintext))


def rewrap_data_key(
    keyring: Keyring, community_id: int, person_id: uuid.UUID, key_id: str, wrapped: bytes
) -> tuple[str, bytes]:
    """Unwrap under ``key_id`` and wrap again under the active key (rotation; the profile is untouched)."""
    dek = unwrap_data_key(keyring, community_id, person_id, key_id, wrapped)
    return wrap_data_key(keyring, community_id, person_id, dek)
