"""Unit tests for tlog-checkpoint bodies and signed checkpoints (including docs/reference/notes.md)."""

from __future__ import annotations

import base64

import pytest

from ledger.audit.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    CheckpointError,
    WrongOriginError,
    format_checkpoint_body,
    parse_checkpoint_body,
    sign_checkpoint,
    verify_checkpoint,
)
from ledger.audit.note import (
    InvalidSignatureError,
    NoteError,
    Signer,
    UnverifiedNoteError,
    encode_signer_key,
    parse_verifier_key,
)

# The worked example of docs/reference/notes.md: the log key is derived from the seed 00 01 .. 1f,
# and the root is the size-2 tree of the test vectors in docs/reference/leaves.md.
ORIGIN = "ledger.example.org/community/42"
SEED = bytes(range(32))
ROOT = bytes.fromhex("702b60fb2e2ece85581cfeeb11d88c1a1891120db44e73fc4a96c286c7cce400")
ROOT_B64 = "cCtg+y4uzoVYHP7rEdiMGhiREg20TnP8SpbChsfM5AA="
DOC_SKEY = "PRIVATE+KEY+ledger.example.org/community/42+48663b3e+AQABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f"
DOC_VKEY = "ledger.example.org/community/42+48663b3e+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
DOC_BODY = f"{ORIGIN}\n2\n{ROOT_B64}\n"
DOC_NOTE = (
    DOC_BODY + "\n\u2014 ledger.example.org/community/42 "
    "SGY7Ppgg8S3mgAsliqMacDB8yvdgOXwBan05PSjvJ9BGka7kESYjBFu/GqCzGkmweMbe3dbtgP5wEkvVwTYlej/VAw4=\n"
)

LOG = Signer.from_seed(ORIGIN, SEED)
CP = Checkpoint(ORIGIN, 2, ROOT)


# --- the documented example --------------------------------------------------------------------


def test_documented_example_keys() -> None:
    assert encode_signer_key(ORIGIN, SEED) == DOC_SKEY
    assert LOG.verifier().vkey() == DOC_VKEY
    assert parse_verifier_key(DOC_VKEY) == LOG.verifier()
    assert f"{LOG.key_id:08x}" == "48663b3e"
    assert base64.b64encode(ROOT).decode() == ROOT_B64


def test_documented_example_note_bytes() -> None:
    assert format_checkpoint_body(CP) == DOC_BODY
    assert sign_checkpoint(CP, LOG) == DOC_NOTE.encode()
    assert verify_checkpoint(DOC_NOTE.encode(), parse_verifier_key(DOC_VKEY), origin=ORIGIN) == CP


# --- bodies -------------------------------------------------------------------------------------


def test_body_round_trip_with_extensions() -> None:
    cp = Checkpoint(ORIGIN, 0, bytes(32), ("ext one", "ext:two"))
    body = format_checkpoint_body(cp)
    assert body == f"{ORIGIN}\n0\n{'A' * 43}=\next one\next:two\n"
    assert parse_checkpoint_body(body) == cp
    assert parse_checkpoint_body(format_checkpoint_body(CP)) == CP
    big = Checkpoint(ORIGIN, MAX_TREE_SIZE, ROOT)
    assert parse_checkpoint_body(format_checkpoint_body(big)) == big


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (f"{ORIGIN}\n0123\n{ROOT_B64}\n", "leading zero"),
        (f"{ORIGIN}\n00\n{ROOT_B64}\n", "leading zero"),
        (f"{ORIGIN}\n+5\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n-1\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n 5\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n1_000\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n\u0661\u0662\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n0x10\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n\n{ROOT_B64}\n", "not a decimal"),
        (f"{ORIGIN}\n{MAX_TREE_SIZE + 1}\n{ROOT_B64}\n", "larger than"),
        (f"{ORIGIN}\n2\n{ROOT_B64[:-1]}\n", "base64"),
        (f"{ORIGIN}\n2\n{ROOT_B64.replace('+', '-')}\n", "base64"),
        (f"{ORIGIN}\n2\n{ROOT_B64[:-2]}B=\n", "canonical"),
        (f"{ORIGIN}\n2\n{base64.b64encode(bytes(31)).decode()}\n", "32"),
        (f"{ORIGIN}\n2\n{base64.b64encode(bytes(48)).decode()}\n", "32"),
        (f"\n2\n{ROOT_B64}\n", "origin is empty"),
        (f"{ORIGIN}\t\n2\n{ROOT_B64}\n", "control character U\\+0009"),
        (f"{ORIGIN}\x7f\n2\n{ROOT_B64}\n", "control character U\\+007F"),
        (f"{ORIGIN}\r\n2\r\n{ROOT_B64}\r\n", "control character U\\+000D"),
        (f"{ORIGIN}\n2\n{ROOT_B64}\n\n", "extension line 1 is empty"),
        (f"{ORIGIN}\n2\n{ROOT_B64}", "end with a newline"),
        (f"{ORIGIN}\n2\n", "needs origin, size and root"),
    ],
)
def test_malformed_bodies_are_rejected(body: str, reason: str) -> None:
    with pytest.raises(CheckpointError, match=reason):
        parse_checkpoint_body(body)


def test_checkpoint_fields_are_validated() -> None:
    with pytest.raises(CheckpointError, match="32 bytes"):
        Checkpoint(ORIGIN, 1, bytes(31))
    with pytest.raises(CheckpointError, match="outside"):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(CheckpointError, match="integer"):
        Checkpoint(ORIGIN, True, ROOT)
    with pytest.raises(CheckpointError, match="control character"):
        Checkpoint(ORIGIN + "\n", 1, ROOT)
    with pytest.raises(CheckpointError, match="empty"):
        Checkpoint("", 1, ROOT)
    with pytest.raises(CheckpointError, match="extension line 1"):
        Checkpoint(ORIGIN, 1, ROOT, ("",))


# --- signing and verification ------------------------------------------------------------------


def test_signer_name_must_be_the_origin() -> None:
    with pytest.raises(CheckpointError, match="not the checkpoint origin"):
        sign_checkpoint(CP, Signer.from_seed("ledger.example.org/community/43", SEED))


def test_round_trip_ignores_other_signatures() -> None:
    # A witness line, not checked here: cosignatures are counted by the cosignature module.
    witness_line = "\u2014 witness.example/w " + base64.b64encode(bytes(76)).decode() + "\n"
    note = sign_checkpoint(CP, LOG) + witness_line.encode()
    assert verify_checkpoint(note, LOG.verifier(), origin=ORIGIN) == CP


def _replace_blob(note: str, blob: bytearray) -> str:
    head = note.rstrip("\n").rsplit(" ", 1)[0]
    return f"{head} {base64.b64encode(bytes(blob)).decode()}\n"


def test_flipped_signature_bit_is_rejected() -> None:
    blob = bytearray(base64.b64decode(DOC_NOTE.rstrip("\n").rsplit(" ", 1)[1]))
    blob[-1] ^= 0x80
    with pytest.raises(InvalidSignatureError, match="invalid signature"):
        verify_checkpoint(_replace_blob(DOC_NOTE, blob).encode(), LOG.verifier(), origin=ORIGIN)


@pytest.mark.parametrize(
    "edited",
    [
        DOC_NOTE.replace(f"\n2\n{ROOT_B64}", f"\n3\n{ROOT_B64}"),
        DOC_NOTE.replace(ROOT_B64, base64.b64encode(bytes(32)).decode()),
        DOC_NOTE.replace(ROOT_B64, ROOT_B64 + "\nextension"),
    ],
    ids=["size", "root", "added-extension"],
)
def test_edited_body_is_rejected(edited: str) -> None:
    with pytest.raises(InvalidSignatureError):
        verify_checkpoint(edited.encode(), LOG.verifier(), origin=ORIGIN)


def test_unknown_key_is_rejected() -> None:
    impostor = Signer.from_seed(ORIGIN, bytes(32))
    note = sign_checkpoint(CP, impostor)
    with pytest.raises(UnverifiedNoteError, match=r"no signature by a trusted key.*another key ID"):
        verify_checkpoint(note, LOG.verifier(), origin=ORIGIN)


def test_wrong_key_id_is_rejected() -> None:
    blob = bytearray(base64.b64decode(DOC_NOTE.rstrip("\n").rsplit(" ", 1)[1]))
    blob[0] ^= 0x01
    with pytest.raises(UnverifiedNoteError, match="49663b3e"):
        verify_checkpoint(_replace_blob(DOC_NOTE, blob).encode(), LOG.verifier(), origin=ORIGIN)


def test_checkpoint_of_another_origin_is_rejected() -> None:
    other_origin = "ledger.example.org/community/43"
    other = Signer.from_seed(other_origin, bytes(range(1, 33)))
    note = sign_checkpoint(Checkpoint(other_origin, 2, ROOT), other)
    assert verify_checkpoint(note, other.verifier(), origin=other_origin).origin == other_origin
    with pytest.raises(WrongOriginError, match=r"community/43.*expected.*community/42"):
        verify_checkpoint(note, LOG.verifier(), origin=ORIGIN)


def test_trusted_key_must_be_named_after_the_origin() -> None:
    with pytest.raises(CheckpointError, match="not the origin"):
        verify_checkpoint(DOC_NOTE.encode(), LOG.verifier(), origin="ledger.example.org/community/43")


# Design item 11: malformed notes are parse errors with a reason, before any signature check.
@pytest.mark.parametrize(
    ("note", "reason"),
    [
        pytest.param(DOC_NOTE.replace("\u2014", "-"), "ASCII hyphen-minus", id="ascii-dash"),
        pytest.param(DOC_NOTE.replace("\n", "\r\n"), "carriage return", id="crlf"),
        pytest.param(DOC_NOTE.replace("\n\n", "\n"), "no blank line", id="missing-blank-line"),
        pytest.param(DOC_NOTE.replace("\n2\n", "\n0002\n"), "leading zero", id="leading-zero-size"),
        pytest.param(DOC_NOTE.replace(ROOT_B64, ROOT_B64.rstrip("=")), "base64", id="bad-base64-root"),
        pytest.param(DOC_NOTE.replace("SGY7", "SGY*"), "base64", id="bad-base64-signature"),
        pytest.param(DOC_NOTE.replace("community", "commun\x00ity"), "control character", id="nul"),
        pytest.param(DOC_NOTE.replace("community", "commun\x1bity"), "control character", id="escape"),
    ],
)
def test_malformed_checkpoint_notes_are_parse_errors(note: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason) as exc:
        verify_checkpoint(note.encode(), LOG.verifier(), origin=ORIGIN)
    assert not isinstance(exc.value, InvalidSignatureError | UnverifiedNoteError)
