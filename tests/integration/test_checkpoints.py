"""Publishing checkpoints of a real community log: signed, witnessed, refused after tampering, rotated."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
from psycopg_pool import ConnectionPool

from ledger.audit.checkpoint import verify_checkpoint
from ledger.audit.cosignature import WitnessVerifier, count_valid_cosignatures, parse_witness_key
from ledger.audit.leaf import decode_leaf
from ledger.audit.merkle import verify_consistency
from ledger.audit.note import parse_verifier_key
from ledger.audit.signer import CheckpointSigner, SignerRefused, generate_key_file, verify_with_history
from ledger.audit.witness import HttpWitness, LocalWitness, Witness
from ledger.domain.accounts import SystemAccount
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.services.audit_log import AuditLog
from ledger.services.checkpoints import Checkpoints
from ledger.services.communities import CommunityInfo
from ledger.services.ledger import Ledger
from ledger.store.db import Conn

WITNESS = "witness.test/w1"


def _append(ledger: Ledger, community: CommunityInfo, open_member: object, n: int, tag: str) -> None:
    c = community.community_id
    issuance = community.system_accounts[(SystemAccount.ISSUANCE, Unit.POINTS)]
    member = open_member(Unit.POINTS)  # type: ignore[operator]
    postings = (Posting(issuance, Unit.POINTS, -1), Posting(member, Unit.POINTS, 1))
    ledger.post_batch([TransferRequest(c, "award", postings, f"{tag}{i}") for i in range(n)])


@pytest.fixture
def audit(pool: ConnectionPool[Conn]) -> AuditLog:
    return AuditLog(pool)


@pytest.fixture
def signer(tmp_path: Path) -> CheckpointSigner:
    return CheckpointSigner(tmp_path / "signer-keys", tmp_path / "signer-state.json")


def _witness(tmp_path: Path, trusted: dict[str, str]) -> Witness:
    key = tmp_path / "witness.key"
    if not key.exists():
        generate_key_file(key, WITNESS)
    return Witness(WITNESS, key, tmp_path / "witness-state.json", trusted)


def test_publish_signs_and_witnesses_a_growing_log(
    audit: AuditLog,
    signer: CheckpointSigner,
    ledger: Ledger,
    community: CommunityInfo,
    open_member: object,
    tmp_path: Path,
) -> None:
    c, origin = community.community_id, community.origin
    log_key = parse_verifier_key(signer.generate(origin))
    witness = _witness(tmp_path, {origin: log_key.vkey()})
    witness_key = parse_witness_key(witness.verifier_key())
    checkpoints = Checkpoints(audit, signer, [LocalWitness(witness)], min_interval_s=0)

    _append(ledger, community, open_member, 5, "a")
    first = checkpoints.publish(c)
    assert first is not None and first.size == 5
    assert verify_checkpoint(first.note, log_key, origin=origin).root_hash == first.root
    assert count_valid_cosignatures(first.note, [witness_key]) == 1
    stored = audit.latest_checkpoint(c)
    assert stored is not None and stored.note == first.note
    assert checkpoints.publish(c) is None  # nothing changed, and the checkpoint is fresh

    _append(ledger, community, open_member, 8, "b")
    second = checkpoints.publish(c)
    assert second is not None and second.size == 13
    assert count_valid_cosignatures(second.note, [witness_key]) == 1
    verify_consistency(5, 13, first.root, second.root, audit.consistency(c, 5, 13))
    assert witness.latest(origin) == (13, second.root)
    assert signer.last_signed(origin) == (13, second.root)

    # A restarted service does not know what the witness saw: the witness's 409 tells it.
    _append(ledger, community, open_member, 2, "c")
    restarted = Checkpoints(audit, signer, [LocalWitness(witness)], min_interval_s=0)
    third = restarted.publish(c)
    assert third is not None and count_valid_cosignatures(third.note, [witness_key]) == 1


def test_rate_limit_and_daily_resigning(
    audit: AuditLog, signer: CheckpointSigner, ledger: Ledger, community: CommunityInfo, open_member: object
) -> None:
    c = community.community_id
    _append(ledger, community, open_member, 2, "a")
    limited = Checkpoints(audit, signer, [], min_interval_s=3600)
    assert limited.publish(c) is not None
    _append(ledger, community, open_member, 1, "b")
    assert limited.publish(c) is None  # changed, but the last checkpoint is too recent
    assert limited.publish(c, force=True) is not None
    stale = Checkpoints(audit, signer, [], min_interval_s=0, max_age_s=0)
    again = stale.publish(c)  # unchanged, but older than the maximum age: signed again
    assert again is not None and again.size == 3


def test_a_witness_that_is_down_does_not_block_publishing(
    audit: AuditLog,
    signer: CheckpointSigner,
    ledger: Ledger,
    community: CommunityInfo,
    open_member: object,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    c, origin = community.community_id, community.origin
    vkey = signer.generate(origin)
    up = _witness(tmp_path, {origin: vkey})
    down_key = WitnessVerifier.of(generate_key_file(tmp_path / "down.key", "witness.test/down")).vkey()
    down = HttpWitness(down_key, "http://127.0.0.1:9", timeout_s=1)  # nothing listens there
    checkpoints = Checkpoints(audit, signer, [down, LocalWitness(up)], min_interval_s=0)
    _append(ledger, community, open_member, 3, "a")
    with caplog.at_level(logging.WARNING, logger="ledger.services.checkpoints"):
        published = checkpoints.publish(c)
    assert published is not None
    assert count_valid_cosignatures(published.note, [parse_witness_key(up.verifier_key())]) == 1
    assert "did not cosign" in caplog.text


class TamperedAudit:
    """A database whose history was rewritten: its tree reports another root (or an older size)."""

    def __init__(self, real: AuditLog, *, root: bytes | None = None, size: int | None = None) -> None:
        self._real, self._root, self._size = real, root, size

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def ingest(self, log_id: int, *, limit: int | None = None) -> tuple[int, bytes]:
        size, root = self._real.ingest(log_id, limit=limit)
        if self._size is not None:
            return self._size, self._real.root(log_id, self._size)
        return size, self._root or root


def test_a_tampered_database_gets_no_signature(
    audit: AuditLog, signer: CheckpointSigner, ledger: Ledger, community: CommunityInfo, open_member: object
) -> None:
    c, origin = community.community_id, community.origin
    _append(ledger, community, open_member, 6, "a")
    honest = Checkpoints(audit, signer, [], min_interval_s=0)
    signed = honest.publish(c)
    assert signed is not None
    _append(ledger, community, open_member, 3, "b")
    rewritten = Checkpoints(
        TamperedAudit(audit, root=hashlib.sha256(b"rewritten").digest()),  # type: ignore[arg-type]
        signer,
        [],
        min_interval_s=0,
    )
    with pytest.raises(SignerRefused, match="does not extend the last signed tree"):
        rewritten.publish(c)
    restored = Checkpoints(TamperedAudit(audit, size=4), signer, [], min_interval_s=0)  # type: ignore[arg-type]
    with pytest.raises(SignerRefused, match="smaller than the last signed size 6"):
        restored.publish(c)
    latest = audit.latest_checkpoint(c)
    assert latest is not None and latest.note == signed.note
    assert signer.last_signed(origin) == (6, signed.root)


def test_rotate_key_retires_the_old_key_at_the_final_checkpoint(
    pool: ConnectionPool[Conn],
    audit: AuditLog,
    signer: CheckpointSigner,
    ledger: Ledger,
    community: CommunityInfo,
    open_member: object,
    tmp_path: Path,
) -> None:
    c, origin = community.community_id, community.origin
    old_vkey = signer.generate(origin)
    witness = _witness(tmp_path, {origin: old_vkey})
    checkpoints = Checkpoints(audit, signer, [LocalWitness(witness)], min_interval_s=0, pool=pool)
    _append(ledger, community, open_member, 4, "a")
    checkpoints.publish(c)
    _append(ledger, community, open_member, 2, "b")

    rotated = checkpoints.rotate_key(c)
    history = signer.key_history(origin)
    assert [k.vkey for k in history] == [old_vkey, signer.verifier_key(origin)]
    assert history[0].retired_at == 6 and history[1].valid_from == 6
    assert rotated.size == 7  # the final old-key checkpoint (6) plus the key_rotation leaf
    verify_checkpoint(rotated.note, parse_verifier_key(history[1].vkey), origin=origin)
    final = next(cp for cp in audit.checkpoints(c) if cp.size == 6)
    verify_checkpoint(final.note, parse_verifier_key(old_vkey), origin=origin)
    for cp in audit.checkpoints(c):
        assert verify_with_history(cp.note, origin, history).size == cp.size
    event = decode_leaf(audit.entries(c, 6, 7)[0].leaf)
    assert event["type"] == "key_rotation"
    assert (event["old_key"], event["new_key"], event["retired_at_size"]) == (old_vkey, history[1].vkey, 6)

    # The witness cosigns new-key checkpoints once it trusts the new key.
    assert count_valid_cosignatures(rotated.note, [parse_witness_key(witness.verifier_key())]) == 0
    witness.trust(origin, history[1].vkey)
    again = checkpoints.publish(c, force=True)
    assert again is not None
    assert count_valid_cosignatures(again.note, [parse_witness_key(witness.verifier_key())]) == 1
