"""The checkpoint signer: key files, its own state, refusals, backups and key rotation."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from ledger.audit import merkle
from ledger.audit.checkpoint import Checkpoint, CheckpointError, sign_checkpoint, verify_checkpoint
from ledger.audit.note import UnverifiedNoteError, parse_verifier_key
from ledger.audit.signer import (
    CheckpointSigner,
    KeyRecord,
    SignerRefused,
    SignerStateError,
    generate_key_file,
    load_key_file,
    rotation_event_fields,
    verify_with_history,
)

ORIGIN = "test.vledger/community/7"


class FakeLog:
    """An in-memory log: leaf hashes, roots and consistency proofs by the RFC 9162 reference."""

    def __init__(self, tag: str, n: int = 0) -> None:
        self.tag = tag
        self.hashes: list[bytes] = []
        self.grow(n)

    def grow(self, n: int) -> FakeLog:
        start = len(self.hashes)
        self.hashes += [hashlib.sha256(f"{self.tag}{i}".encode()).digest() for i in range(start, start + n)]
        return self

    def cp(self, size: int | None = None, origin: str = ORIGIN) -> Checkpoint:
        size = len(self.hashes) if size is None else size
        return Checkpoint(origin, size, merkle.root(self.hashes[:size]))

    def prove(self, m: int, n: int) -> list[bytes]:
        return merkle.consistency_proof_reference(m, self.hashes[:n])


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "signer.json"


@pytest.fixture
def signer(key_dir: Path, state_path: Path) -> CheckpointSigner:
    return CheckpointSigner(key_dir, state_path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_signature_creates_a_private_key_file_and_state(
    signer: CheckpointSigner, key_dir: Path, state_path: Path
) -> None:
    log = FakeLog("a", 5)
    note = signer.sign(log.cp(), log.prove)
    vkey = signer.verifier_key(ORIGIN)
    assert verify_checkpoint(note, parse_verifier_key(vkey), origin=ORIGIN) == log.cp()
    [key_file] = key_dir.glob("*.key")
    assert key_file.name == f"test.vledger%2Fcommunity%2F7.{vkey.split('+')[1]}.key"
    assert key_file.read_text().startswith(f"PRIVATE+KEY+{ORIGIN}+")
    assert _mode(key_file) == 0o600 and _mode(state_path) == 0o600 and _mode(key_dir) == 0o700
    state = json.loads(state_path.read_text())
    assert state["logs"][ORIGIN]["size"] == 5
    assert state["logs"][ORIGIN]["root"] == log.cp().root_hash.hex()
    assert signer.verifier_keys() == [(ORIGIN, vkey)]
    assert signer.last_signed(ORIGIN) == (5, log.cp().root_hash)


def test_extensions_with_a_valid_proof_are_signed(signer: CheckpointSigner) -> None:
    log = FakeLog("a", 3)
    signer.sign(log.cp(), log.prove)
    for n in (4, 8, 13):
        log.grow(n - len(log.hashes))
        note = signer.sign(log.cp(), log.prove)
        assert (
            verify_checkpoint(note, parse_verifier_key(signer.verifier_key(ORIGIN)), origin=ORIGIN).size == n
        )
    assert signer.sign(log.cp(), log.prove)  # the same head again (daily re-signing)


def test_an_older_size_is_refused(signer: CheckpointSigner, state_path: Path) -> None:
    log = FakeLog("a", 9)
    signer.sign(log.cp(), log.prove)
    before = state_path.read_bytes()
    with pytest.raises(SignerRefused, match=r"size 6 is smaller than the last signed size 9"):
        signer.sign(log.cp(6), log.prove)
    assert state_path.read_bytes() == before


def test_another_root_at_the_same_size_is_refused(signer: CheckpointSigner) -> None:
    log, forged = FakeLog("a", 9), FakeLog("b", 9)
    signer.sign(log.cp(), log.prove)
    with pytest.raises(SignerRefused, match=r"at size 9 differs from the root signed at that size"):
        signer.sign(forged.cp(), forged.prove)


def test_a_rewritten_history_is_refused(signer: CheckpointSigner) -> None:
    log = FakeLog("a", 6)
    signer.sign(log.cp(), log.prove)
    rewritten = FakeLog("a", 6)
    rewritten.hashes[2] = hashlib.sha256(b"edited").digest()
    rewritten.grow(4)
    with pytest.raises(SignerRefused, match=r"does not extend the last signed tree \(size 6"):
        signer.sign(rewritten.cp(), rewritten.prove)


def test_a_failing_proof_source_is_a_refusal(signer: CheckpointSigner) -> None:
    log = FakeLog("a", 2)
    signer.sign(log.cp(), log.prove)
    log.grow(3)

    def broken(m: int, n: int) -> list[bytes]:
        raise LookupError("the tree has no stored node (1, 0)")

    with pytest.raises(SignerRefused, match=r"no consistency proof from the last signed size 2 to 5"):
        signer.sign(log.cp(), broken)


def test_the_state_is_written_atomically(
    signer: CheckpointSigner, state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = FakeLog("a", 4)
    signer.sign(log.cp(), log.prove)
    before = state_path.read_bytes()
    log.grow(4)

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        signer.sign(log.cp(), log.prove)
    # The old state is intact and no temporary file is left behind.
    assert state_path.read_bytes() == before
    assert sorted(p.name for p in state_path.parent.iterdir()) == ["signer.json", "signer.json.lock"]
    monkeypatch.undo()
    assert signer.sign(log.cp(), log.prove)
    assert json.loads(state_path.read_text())["logs"][ORIGIN]["size"] == 8


def test_two_signers_on_the_same_files_share_the_state(key_dir: Path, state_path: Path) -> None:
    first, second = CheckpointSigner(key_dir, state_path), CheckpointSigner(key_dir, state_path)
    log = FakeLog("a", 7)
    first.sign(log.cp(), log.prove)
    with pytest.raises(SignerRefused, match="smaller"):
        second.sign(log.cp(5), log.prove)


def test_state_restored_from_backup_catches_up_from_signed_notes(
    signer: CheckpointSigner, key_dir: Path, state_path: Path, tmp_path: Path
) -> None:
    """Documented behaviour: a restored (older) state moves forward again with ``adopt``."""
    log = FakeLog("a", 3)
    signer.sign(log.cp(), log.prove)
    backup = tmp_path / "backup.json"
    shutil.copy(state_path, backup)
    note7 = signer.sign(log.grow(4).cp(), log.prove)
    shutil.copy(backup, state_path)
    restored = CheckpointSigner(key_dir, state_path)
    assert restored.last_signed(ORIGIN) == (3, log.cp(3).root_hash)
    # The stored notes prove what was signed: the floor goes back up to 7, never down.
    assert restored.adopt(note7, log.prove) is True
    assert restored.adopt(note7, log.prove) is False
    with pytest.raises(SignerRefused, match="smaller than the last signed size 7"):
        restored.sign(log.cp(5), log.prove)
    # A note this signer did not sign is ignored.
    stranger = CheckpointSigner(tmp_path / "other", tmp_path / "other.json")
    assert restored.adopt(stranger.sign(log.grow(2).cp(), log.prove), log.prove) is False
    assert restored.sign(log.cp(), log.prove)


def test_adopting_a_genuine_note_that_contradicts_the_state_is_refused(
    signer: CheckpointSigner, state_path: Path, tmp_path: Path
) -> None:
    log = FakeLog("a", 3)
    signer.sign(log.cp(), log.prove)
    backup = tmp_path / "backup.json"
    shutil.copy(state_path, backup)
    note5 = signer.sign(log.grow(2).cp(), log.prove)
    # With the state rolled back to 3 and no adopt, another branch of size 5 gets signed ...
    shutil.copy(backup, state_path)
    forked = FakeLog("a", 3)
    forked.hashes += FakeLog("b", 5).hashes[3:]
    signer.sign(forked.cp(), forked.prove)
    # ... and the first branch's genuine note then shows the key signed two roots for size 5.
    with pytest.raises(SignerRefused, match="signed two roots for size 5"):
        signer.adopt(note5, forked.prove)


def test_missing_state_with_existing_keys_is_refused(key_dir: Path, state_path: Path) -> None:
    log = FakeLog("a", 2)
    CheckpointSigner(key_dir, state_path).sign(log.cp(), log.prove)
    state_path.unlink()
    with pytest.raises(SignerStateError, match=r"state file .* is missing but .* holds keys"):
        CheckpointSigner(key_dir, state_path)


def test_a_state_older_than_a_logs_key_does_not_make_a_second_key(
    signer: CheckpointSigner, state_path: Path, tmp_path: Path
) -> None:
    log = FakeLog("a", 2)
    signer.sign(log.cp(origin="test.vledger/community/1"), log.prove)
    backup = tmp_path / "backup.json"
    shutil.copy(state_path, backup)
    signer.sign(log.cp(), log.prove)
    shutil.copy(backup, state_path)
    with pytest.raises(SignerStateError, match=r"has no record of log .* but its key file"):
        signer.sign(log.cp(), log.prove)


def test_key_files_are_private_and_checked(tmp_path: Path, signer: CheckpointSigner) -> None:
    path = tmp_path / "k" / "w.key"
    made = generate_key_file(path, "witness.example/w1")
    assert _mode(path) == 0o600
    assert load_key_file(path).public_key == made.public_key
    with pytest.raises(FileExistsError):
        generate_key_file(path, "witness.example/w1")
    os.chmod(path, 0o644)
    with pytest.raises(SignerStateError, match="only its owner may read it"):
        load_key_file(path)
    log = FakeLog("a", 1)
    signer.sign(log.cp(), log.prove)
    [key_file] = (tmp_path / "keys").glob("*.key")
    os.chmod(key_file, 0o640)
    with pytest.raises(SignerStateError, match="0600"):
        signer.sign(log.cp(), log.prove)


def test_generate_makes_the_first_key_of_a_log(signer: CheckpointSigner) -> None:
    vkey = signer.generate(ORIGIN)
    assert signer.verifier_key(ORIGIN) == vkey
    assert signer.load(ORIGIN).verifier().vkey() == vkey
    with pytest.raises(SignerStateError, match="already has a key"):
        signer.generate(ORIGIN)
    log = FakeLog("a", 2)
    note = signer.sign(log.cp(), log.prove)
    verify_checkpoint(note, parse_verifier_key(vkey), origin=ORIGIN)


def test_rotation_keeps_old_checkpoints_verifiable_up_to_the_retirement_size(
    signer: CheckpointSigner, key_dir: Path
) -> None:
    log = FakeLog("a", 4)
    old_note = signer.sign(log.cp(), log.prove)
    old_signer = signer.load(ORIGIN)  # what a thief of the old key file would hold
    with pytest.raises(SignerRefused, match="must be retired at the last signed size 4, not at 6"):
        signer.rotate(ORIGIN, 6)
    old_vkey, new_vkey = signer.rotate(ORIGIN, 4)
    assert old_vkey == old_signer.verifier().vkey() and new_vkey != old_vkey
    assert signer.verifier_key(ORIGIN) == new_vkey
    assert signer.key_history(ORIGIN) == [KeyRecord(old_vkey, 0, 4), KeyRecord(new_vkey, 4, None)]
    assert [p.name.split(".")[-2] for p in key_dir.glob("*.key")] == [new_vkey.split("+")[1]]
    new_note = signer.sign(log.grow(3).cp(), log.prove)
    history = signer.key_history(ORIGIN)
    assert verify_with_history(old_note, ORIGIN, history).size == 4
    assert verify_with_history(new_note, ORIGIN, history).size == 7
    with pytest.raises(UnverifiedNoteError):
        verify_checkpoint(new_note, parse_verifier_key(old_vkey), origin=ORIGIN)
    # The retired key signs nothing above its retirement size, even a genuine head.
    forged = sign_checkpoint(log.cp(), old_signer)
    with pytest.raises(CheckpointError, match="no signature by a key valid at that size"):
        verify_with_history(forged, ORIGIN, history)
    assert verify_with_history(sign_checkpoint(log.cp(4), old_signer), ORIGIN, history).size == 4


def test_rotation_history_survives_a_restart(key_dir: Path, state_path: Path) -> None:
    signer = CheckpointSigner(key_dir, state_path)
    log = FakeLog("a", 2)
    signer.sign(log.cp(), log.prove)
    old_vkey, new_vkey = signer.rotate(ORIGIN, 2)
    again = CheckpointSigner(key_dir, state_path)
    assert [k.vkey for k in again.key_history(ORIGIN)] == [old_vkey, new_vkey]
    note = again.sign(log.grow(1).cp(), log.prove)
    verify_checkpoint(note, parse_verifier_key(new_vkey), origin=ORIGIN)


def test_rotation_event_fields_hold_keys_and_a_size_only() -> None:
    assert rotation_event_fields("o+1+a", "o+2+b", 9) == {
        "old_key": "o+1+a",
        "new_key": "o+2+b",
        "retired_at_size": 9,
    }


def test_unknown_logs_and_malformed_state_are_reported(key_dir: Path, state_path: Path) -> None:
    signer = CheckpointSigner(key_dir, state_path)
    with pytest.raises(SignerStateError, match="no key for log"):
        signer.verifier_key(ORIGIN)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text('{"version": 1, "logs": {"x": {"size": 1}}}')
    with pytest.raises(SignerStateError, match="malformed"):
        CheckpointSigner(key_dir, state_path)
