"""Unit tests for tlog-cosignature/v1 witness cosignatures (including docs/reference/notes.md)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    format_checkpoint_body,
    parse_checkpoint_body,
    sign_checkpoint,
)
from ledger.audit.cosignature import (
    MAX_TIMESTAMP,
    CosignatureError,
    WitnessVerifier,
    cosign,
    cosignature_message,
    count_valid_cosignatures,
    encode_witness_key,
    parse_witness_key,
    verify_cosignature,
)
from ledger.audit.note import (
    ALG_COSIGNATURE_V1,
    Signature,
    Signer,
    encode_signer_key,
    key_id,
    open_note,
    sign_note,
)

# The worked example of docs/reference/notes.md: the witness key is derived from the seed 20 21 .. 3f.
ORIGIN = "ledger.example.org/community/42"
ROOT_B64 = "cCtg+y4uzoVYHP7rEdiMGhiREg20TnP8SpbChsfM5AA="
BODY = f"{ORIGIN}\n2\n{ROOT_B64}\n"
WITNESS_NAME = "witness.example.org/w1"
WITNESS_SEED = bytes(range(32, 64))
DOC_WITNESS_SKEY = "PRIVATE+KEY+witness.example.org/w1+b7240be0+ASAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/"
DOC_WITNESS_VKEY = "witness.example.org/w1+f3c080b6+BCmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X"
TIME = 1735776000  # 2025-01-02T00:00:00Z
DOC_LINE = (
    "\u2014 witness.example.org/w1 88CAtgAAAABnddcAz//g1OLuYYt4kV1TXMVTPm17VU3g2LDG2QwZilMTotoIZAaqBAFYSS+X"
    "VH2QcmTfXM7VKk1o4BTH4nJ5V6JOAA==\n"
)

LOG = Signer.from_seed(ORIGIN, bytes(range(32)))
WITNESS = Signer.from_seed(WITNESS_NAME, WITNESS_SEED)
W = WitnessVerifier.of(WITNESS)


def _blob(line: str) -> bytearray:
    return bytearray(base64.b64decode(line.rstrip("\n").rsplit(" ", 1)[1]))


def _with_blob(line: str, blob: bytearray) -> str:
    return line.rstrip("\n").rsplit(" ", 1)[0] + " " + base64.b64encode(bytes(blob)).decode() + "\n"


# --- the documented example --------------------------------------------------------------------


def test_documented_example() -> None:
    assert encode_signer_key(WITNESS_NAME, WITNESS_SEED) == DOC_WITNESS_SKEY
    assert W.vkey() == DOC_WITNESS_VKEY
    assert f"{W.key_id:08x}" == "f3c080b6"
    assert cosign(BODY, WITNESS, TIME) == DOC_LINE
    assert verify_cosignature(DOC_LINE, BODY, parse_witness_key(DOC_WITNESS_VKEY)) == TIME


def test_reference_doc_shows_exactly_these_bytes() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "notes.md").read_text("utf-8")
    note = sign_checkpoint(parse_checkpoint_body(BODY), LOG) + cosign(BODY, WITNESS, TIME).encode()
    assert f"```\n{note.decode()}```" in doc
    assert f"{len(note)} bytes, SHA-256\n`{hashlib.sha256(note).hexdigest()}`" in doc
    blob = _blob(DOC_LINE)
    assert f"{blob[12:44].hex()}\n           {blob[44:].hex()}" in doc
    for text in (DOC_WITNESS_SKEY, DOC_WITNESS_VKEY, WITNESS.verifier().vkey(), LOG.verifier().vkey()):
        assert text in doc


def test_line_layout_is_key_id_timestamp_signature() -> None:
    blob = _blob(DOC_LINE)
    assert len(blob) == 4 + 8 + 64
    assert blob[:4].hex() == "f3c080b6"
    assert int.from_bytes(blob[4:12], "big") == TIME
    # The signature is plain Ed25519 over the cosignature/v1 message: check it without our verifier.
    message = b"cosignature/v1\ntime 1735776000\n" + BODY.encode()
    assert cosignature_message(TIME, BODY) == message
    Ed25519PublicKey.from_public_bytes(WITNESS.public_key).verify(bytes(blob[12:]), message)


def test_cosignature_key_id_uses_type_byte_0x04() -> None:
    assert W.key_id == key_id(WITNESS_NAME, ALG_COSIGNATURE_V1, WITNESS.public_key)
    assert W.key_id != WITNESS.key_id  # the 0x01 note key ID of the same key


def test_witness_keys_parse_from_type_0x04_and_0x01() -> None:
    assert encode_witness_key(WITNESS_NAME, WITNESS.public_key) == DOC_WITNESS_VKEY
    assert parse_witness_key(DOC_WITNESS_VKEY) == W
    assert parse_witness_key(WITNESS.verifier().vkey()) == W
    assert WitnessVerifier.of(WITNESS.verifier()) == W


# --- round trip and rejection ------------------------------------------------------------------


def test_round_trip_on_a_signed_checkpoint() -> None:
    cp = Checkpoint(ORIGIN, 7, bytes(range(32)), ("extension",))
    body = format_checkpoint_body(cp)
    note = sign_checkpoint(cp, LOG) + cosign(body, WITNESS, 1).encode()
    assert verify_cosignature(cosign(body, WITNESS, 1), body, W) == 1
    assert count_valid_cosignatures(note, [W]) == 1
    # The witness key also works as an ordinary note verifier.
    opened = open_note(note, [W])
    assert [s.name for s in opened.verified] == [WITNESS_NAME]
    assert [s.name for s in opened.unverified] == [ORIGIN]


def test_timestamps_at_the_bounds() -> None:
    assert verify_cosignature(cosign(BODY, WITNESS, 0), BODY, W) == 0
    assert verify_cosignature(cosign(BODY, WITNESS, MAX_TIMESTAMP), BODY, W) == MAX_TIMESTAMP
    for bad in (-1, MAX_TIMESTAMP + 1):
        with pytest.raises(CosignatureError, match="outside"):
            cosign(BODY, WITNESS, bad)


def test_only_checkpoints_are_cosigned() -> None:
    with pytest.raises(CheckpointError):
        cosign("not a checkpoint\n", WITNESS, TIME)
    with pytest.raises(CheckpointError):
        verify_cosignature(DOC_LINE, f"{ORIGIN}\n02\n{ROOT_B64}\n", W)


def test_wrong_witness_key_is_rejected() -> None:
    impostor = Signer.from_seed(WITNESS_NAME, bytes(32))
    with pytest.raises(CosignatureError, match="key ID"):
        verify_cosignature(cosign(BODY, impostor, TIME), BODY, W)
    other_name = Signer.from_seed("witness.example.org/w2", WITNESS_SEED)
    with pytest.raises(CosignatureError, match="not by witness"):
        verify_cosignature(cosign(BODY, other_name, TIME), BODY, W)


def test_plain_note_signature_by_the_witness_is_not_a_cosignature() -> None:
    plain = sign_note(BODY, [WITNESS]).decode().split("\n\n", 1)[1]
    with pytest.raises(CosignatureError, match="key ID"):
        verify_cosignature(plain, BODY, W)


def test_edited_checkpoint_is_rejected() -> None:
    for edited in (BODY.replace("\n2\n", "\n3\n"), BODY.replace(ROOT_B64, "A" * 43 + "=")):
        with pytest.raises(CosignatureError, match="invalid cosignature"):
            verify_cosignature(DOC_LINE, edited, W)


def test_edited_timestamp_is_rejected() -> None:
    blob = _blob(DOC_LINE)
    blob[11] ^= 0x01
    with pytest.raises(CosignatureError, match="invalid cosignature"):
        verify_cosignature(_with_blob(DOC_LINE, blob), BODY, W)
    blob = _blob(DOC_LINE)
    blob[4] = 0x80  # above 2^63 - 1
    with pytest.raises(CosignatureError, match="larger than"):
        verify_cosignature(_with_blob(DOC_LINE, blob), BODY, W)


def test_flipped_signature_bit_is_rejected() -> None:
    blob = _blob(DOC_LINE)
    blob[40] ^= 0x04
    with pytest.raises(CosignatureError, match="invalid cosignature"):
        verify_cosignature(_with_blob(DOC_LINE, blob), BODY, W)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (DOC_LINE.replace("\u2014", "-"), "malformed.*hyphen-minus"),
        (DOC_LINE.replace("==", "="), "malformed.*base64"),
        (DOC_LINE.replace(" 88CA", "  88CA"), "malformed"),
        (_with_blob(DOC_LINE, _blob(DOC_LINE)[:-1]), "8-byte timestamp and a 64-byte signature"),
        (_with_blob(DOC_LINE, _blob(DOC_LINE)[:12]), "8-byte timestamp"),
    ],
)
def test_malformed_lines_are_rejected(line: str, reason: str) -> None:
    with pytest.raises(CosignatureError, match=reason):
        verify_cosignature(line, BODY, W)


# --- quorum -------------------------------------------------------------------------------------


def test_count_valid_cosignatures() -> None:
    witnesses = [Signer.from_seed(f"witness.example.org/w{i}", bytes([i]) * 32) for i in range(4)]
    verifiers = [WitnessVerifier.of(w) for w in witnesses]
    note = sign_note(BODY, [LOG]).decode()
    note += cosign(BODY, witnesses[0], TIME) + cosign(BODY, witnesses[0], TIME + 1)  # counted once
    note += cosign(BODY, witnesses[1], TIME)
    broken = _blob(cosign(BODY, witnesses[2], TIME))
    broken[-1] ^= 0x01
    note += _with_blob(cosign(BODY, witnesses[2], TIME), broken)  # invalid: not counted
    note += cosign(BODY, Signer.from_seed("stranger.example", bytes(32)), TIME)  # unknown
    data = note.encode()
    assert count_valid_cosignatures(data, verifiers) == 2
    assert count_valid_cosignatures(data, verifiers + verifiers) == 2
    assert count_valid_cosignatures(data, [witnesses[1].verifier()]) == 1
    assert count_valid_cosignatures(data, []) == 0
    assert count_valid_cosignatures(data, verifiers[3:]) == 0


def test_count_rejects_ambiguous_witnesses_and_bad_checkpoints() -> None:
    note = sign_note(BODY, [LOG]) + DOC_LINE.encode()
    twin = WitnessVerifier(WITNESS_NAME, bytes(32))
    object.__setattr__(twin, "key_id", W.key_id)  # a forced collision of name and key ID
    with pytest.raises(CosignatureError, match="ambiguous"):
        count_valid_cosignatures(note, [W, twin])
    not_a_checkpoint = sign_note("hello\n", [LOG]) + Signature(WITNESS_NAME, 1, bytes(72)).line.encode()
    with pytest.raises(CheckpointError):
        count_valid_cosignatures(not_a_checkpoint + b"\n", [W])
