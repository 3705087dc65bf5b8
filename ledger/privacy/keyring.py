"""Master keys and the blind-index key: parsed from settings, or generated once into ``keys.json``.

Errors here never contain key material: only key ids, setting names and lengths.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

KEY_BYTES = 32
KEY_FILE_NAME = "keys.json"
# Key ids go into AAD and the ``person_key.key_id`` column; a short safe alphabet keeps both simple.
_KEY_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_BAD_KEY_ID = "a master key id is malformed: use 1-32 letters, digits, '.', '_' or '-', starting alphanumeric"


class KeyringError(ValueError):
    """A key setting or key file is malformed, or a needed key id is not in the keyring."""


class KeySettings(Protocol):
    """The part of ``ledger.config.Settings`` the keyring reads."""

    @property
    def master_keys(self) -> str | None: ...

    @property
    def blind_index_key(self) -> str | None: ...

    @property
    def data_dir(self) -> Path: ...


def generate_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


class Keyring:
    """Master keys by id (the first is active: it wraps new data keys) and the blind-index key.

    The other master keys only unwrap, so that data keys wrapped before a rotation stay readable
    until ``rewrap`` has moved them to the active key.
    """

    __slots__ = ("_blind_index_key", "_master_keys")

    def __init__(self, master_keys: Mapping[str, bytes], blind_index_key: bytes) -> None:
        if not master_keys:
            raise KeyringError("at least one master key is required")
        for key_id, key in master_keys.items():
            if not _KEY_ID_RE.fullmatch(key_id):
                # Not echoed: a malformed id may be a pasted key.
                raise KeyringError(_BAD_KEY_ID)
            if len(key) != KEY_BYTES:
                raise KeyringError(f"master key {key_id!r} must be {KEY_BYTES} bytes, not {len(key)}")
        if len(blind_index_key) != KEY_BYTES:
            raise KeyringError(f"the blind-index key must be {KEY_BYTES} bytes, not {len(blind_index_key)}")
        self._master_keys: Mapping[str, bytes] = MappingProxyType(dict(master_keys))
        self._blind_index_key = bytes(blind_index_key)

    def __repr__(self) -> str:  # never the keys themselves
        return f"Keyring(active={self.active_key_id!r}, key_ids={list(self._master_keys)!r})"

    @property
    def active_key_id(self) -> str:
        return next(iter(self._master_keys))

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._master_keys)

    @property
    def blind_index_key(self) -> bytes:
        return self._blind_index_key

    def master_key(self, key_id: str) -> bytes:
        try:
            return self._master_keys[key_id]
        except KeyError:
            raise KeyringError(f"master key {key_id!r} is not in the keyring") from None

    @classmethod
    def generate(cls, key_id: str = "k1") -> Keyring:
        """A keyring of fresh random keys (tests, and the first start of the demo)."""
        return cls({key_id: generate_key()}, generate_key())

    @classmethod
    def parse(cls, master_keys: str, blind_index_key: str) -> Keyring:
        """Parse ``"kid:base64,kid2:base64"`` and a base64 blind-index key (the settings' format)."""
        keys: dict[str, bytes] = {}
        for item in master_keys.split(","):
            key_id, sep, encoded = item.strip().partition(":")
            if not sep or not key_id:
                raise KeyringError("VLEDGER_MASTER_KEYS must look like 'k1:<base64>,k2:<base64>'")
            if not _KEY_ID_RE.fullmatch(key_id):
                raise KeyringError(_BAD_KEY_ID)
            if key_id in keys:
                raise KeyringError(f"master key id {key_id!r} appears twice in VLEDGER_MASTER_KEYS")
            keys[key_id] = _decode(encoded, f"master key {key_id!r}")
        return cls(keys, _decode(blind_index_key, "VLEDGER_BLIND_INDEX_KEY"))

    @classmethod
    def from_settings(cls, settings: KeySettings) -> Keyring:
        """Keys from settings; with neither set, ``<data_dir>/keys.json`` (created on first use)."""
        if settings.master_keys and settings.blind_index_key:
            return cls.parse(settings.master_keys, settings.blind_index_key)
        if settings.master_keys or settings.blind_index_key:
            # Half a configuration would silently mix a configured key with a generated one.
            raise KeyringError("set both VLEDGER_MASTER_KEYS and VLEDGER_BLIND_INDEX_KEY, or neither")
        return load_or_create_key_file(Path(settings.data_dir) / KEY_FILE_NAME)


def _decode(encoded: str, what: str) -> bytes:
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{what} is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(f"{what} must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def load_or_create_key_file(path: Path) -> Keyring:
    """Read the demo key file, creating it (mode 0600, never overwriting) if it does not exist."""
    if not path.exists():
        _create_key_file(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        master = doc["master_keys"]
        if not isinstance(master, list) or not master:
            raise TypeError
        keys: dict[str, bytes] = {}
        for entry in master:
            keys[str(entry["id"])] = _decode(str(entry["key"]), f"a master key in {path}")
        blind = _decode(str(doc["blind_index_key"]), f"blind_index_key in {path}")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, KeyringError):
            raise
        raise KeyringError(f"key file {path} is unreadable or malformed") from None
    return Keyring(keys, blind)


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "master_keys": [{"id": "k1", "key": encode_key(generate_key())}],
        "blind_index_key": encode_key(generate_key()),
    }
    # Write a private temporary file, then link it into place: the key file appears whole or not at
    # all, and a process racing us keeps whichever file won instead of overwriting it.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
