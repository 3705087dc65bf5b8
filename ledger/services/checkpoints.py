"""Publishing signed, witnessed checkpoints of each community's log, and rotating a log's signing key."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from ledger.audit.checkpoint import Checkpoint
from ledger.audit.cosignature import CosignatureError, parse_witness_key, verify_cosignature
from ledger.audit.note import parse_note
from ledger.audit.signer import CheckpointSigner, Prove, SignerStateError, rotation_event_fields
from ledger.audit.witness import WitnessClient, WitnessConflictError, WitnessError
from ledger.services.audit_log import AuditLog, StoredCheckpoint
from ledger.services.log_events import append_event
from ledger.store.db import Conn

log = logging.getLogger(__name__)

#: A checkpoint is re-signed at least this often even when the log did not change (freshness).
MAX_AGE_S = 86_400.0


class Checkpoints:
    """Signs a log's new tree head, gathers witness cosignatures, and stores the note.

    A witness that is down or refuses is logged and skipped: publishing never waits on witnesses
    beyond their timeouts, and a later publish gathers cosignatures again. Which size each witness
    last cosigned is kept in memory; after a restart the first request starts at 0 and the
    witness's 409 reply tells the real size.
    """

    def __init__(
        self,
        audit: AuditLog,
        signer: CheckpointSigner,
        witnesses: Sequence[WitnessClient],
        *,
        min_interval_s: float = 10.0,
        max_age_s: float = MAX_AGE_S,
        pool: ConnectionPool[Conn] | None = None,
    ) -> None:
        self._audit = audit
        self._signer = signer
        self._witnesses = list(witnesses)
        self._min_interval_s = min_interval_s
        self._max_age_s = max_age_s
        self._pool = pool  # only rotate_key writes (the key_rotation event leaf)
        self._seen: dict[tuple[str, int], int] = {}  # (witness vkey, log id) -> size it last cosigned
        self._lock = threading.Lock()

    @property
    def signer(self) -> CheckpointSigner:
        return self._signer

    def witness_keys(self) -> list[tuple[str, str]]:
        """(name, vkey) of each witness this service asks (the name is the vkey's key name)."""
        return [(w.vkey.split("+", 1)[0], w.vkey) for w in self._witnesses]

    def publish(self, log_id: int, *, force: bool = False) -> StoredCheckpoint | None:
        """Sign and store a checkpoint of the log's current tree, if due; None if not.

        Due means: the tree changed and the last checkpoint is older than ``min_interval_s``, or the
        last checkpoint is older than ``max_age_s``, or ``force``. Raises SignerRefused when the
        tree contradicts what the signer signed before (rollback or rewritten history).
        """
        with self._lock:  # one publisher per process: witnesses see sizes in order
            return self._publish(log_id, force=force)

    def _publish(self, log_id: int, *, force: bool) -> StoredCheckpoint | None:
        latest = self._audit.latest_checkpoint(log_id)
        now = datetime.now(UTC)
        age = None if latest is None else (now - latest.signed_at).total_seconds()
        if not force and age is not None and age < self._min_interval_s:
            return None
        size, root = self._audit.ingest(log_id)
        unchanged = latest is not None and (latest.size, latest.root) == (size, root)
        if not force and unchanged and age is not None and age < self._max_age_s:
            return None
        origin = self._audit.origin(log_id)

        def prove(m: int, n: int) -> list[bytes]:
            return self._audit.consistency(log_id, m, n)

        if latest is not None:
            self._signer.adopt(latest.note, prove)  # catches up a signer state restored from backup
        note = self._signer.sign(Checkpoint(origin, size, root), prove)
        note += "".join(self._cosign(log_id, size, note, prove)).encode()
        self._audit.store_checkpoint(log_id, size, root, note)
        log.info("log %d (%s): checkpoint of size %d signed", log_id, origin, size)
        return StoredCheckpoint(size, root, note, now)

    def _cosign(self, log_id: int, size: int, note: bytes, prove: Prove) -> list[str]:
        """Cosignature lines from every witness that gives a valid one, asked in parallel."""
        if not self._witnesses:
            return []
        with ThreadPoolExecutor(max_workers=len(self._witnesses), thread_name_prefix="witness") as pool:
            futures = [pool.submit(self._ask, w, log_id, size, note, prove) for w in self._witnesses]
            results = [f.result() for f in futures]
        lines: list[str] = []
        for line in results:
            if line is not None and line not in lines:
                lines.append(line)
        return lines

    def _ask(self, witness: WitnessClient, log_id: int, size: int, note: bytes, prove: Prove) -> str | None:
        """This witness's valid cosignature line, or None (logged): a failing witness is skipped."""
        key = (witness.vkey, log_id)
        try:
            lines = _submit(witness, self._seen.get(key, 0), size, note, prove)
        except Exception as exc:  # whatever goes wrong with a witness must not stop publishing
            log.warning("witness %s did not cosign log %d at size %d: %s", witness.vkey, log_id, size, exc)
            return None
        self._seen[key] = size
        return _valid_line(witness, lines, note)

    def rotate_key(self, log_id: int, *, final_checkpoint: bool = True) -> StoredCheckpoint:
        """Retire the log's signing key at its last signed size and publish with a new key.

        Signs a final checkpoint with the old key (unless ``final_checkpoint`` is False, e.g. the old
        key file is lost), rotates, appends the ``key_rotation`` event leaf and publishes the first
        checkpoint under the new key. Witnesses must already trust the new key to cosign it.
        """
        if self._pool is None:
            raise RuntimeError("Checkpoints needs the pool to append the key_rotation event leaf")
        origin = self._audit.origin(log_id)
        with self._lock:
            if final_checkpoint:
                self._publish(log_id, force=True)
            last = self._signer.last_signed(origin)
            if last is None:
                raise SignerStateError(f"log {origin!r} has never been signed; there is no key to rotate")
            old_vkey, new_vkey = self._signer.rotate(origin, last[0])
            fields = rotation_event_fields(old_vkey, new_vkey, last[0])
            append_event(self._pool, log_id, "key_rotation", fields)
            log.info("log %d: key %s retired at size %d, new key %s", log_id, old_vkey, last[0], new_vkey)
            published = self._publish(log_id, force=True)
        assert published is not None
        return published


def _submit(witness: WitnessClient, old: int, size: int, note: bytes, prove: Prove) -> list[str]:
    try:
        return witness.add_checkpoint(old, _proof(old, size, prove), note)
    except WitnessConflictError as exc:
        # The size a witness last cosigned is learnt from its 409 (after a restart, or another
        # publisher): retry once from there.
        return witness.add_checkpoint(exc.size, _proof(exc.size, size, prove), note)


def _proof(old: int, size: int, prove: Prove) -> list[bytes]:
    if old > size:
        raise WitnessError(f"the witness cosigned size {old}, larger than {size}: the log went backwards")
    return prove(old, size) if old < size else []


def _valid_line(witness: WitnessClient, lines: list[str], note: bytes) -> str | None:
    """The line that is a valid cosignature by this witness; other lines are ignored, as the spec says."""
    verifier = parse_witness_key(witness.vkey)
    text, _ = parse_note(note)
    for line in lines:
        try:
            verify_cosignature(line, text, verifier)
        except CosignatureError:
            continue
        return line
    log.warning("witness %s answered without a valid cosignature by its key", witness.vkey)
    return None
