"""Unit tests for C2SP signed notes: key encodings, signing, strict parsing and verification."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.audit.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_SIGNATURES,
    InvalidSignatureError,
    NoteError,
    Signature,
    Signer,
    UnverifiedNoteError,
    Verifier,
    decode_verifier_key,
    encode_signer_key,
    encode_verifier_key,
    key_id,
    open_note,
    parse_note,
    parse_signature_line,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)

# Test vector from the documentation of the Go reference implementation, golang.org/x/mod/sumdb/note
# (package comment "Example", repeated in its note_test.go TestSign/TestOpen). Ed25519 is
# deterministic, so an independent implementation must reproduce the signature byte for byte.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
PETER_NOTE = PETER_TEXT + "\n" + PETER_SIG
# The second signer of the same package example ("EnochRoot"), also from note_test.go.
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
ENOCH_SIG = (
    "\u2014 EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)


@pytest.fixture
def peter() -> Verifier:
    return parse_verifier_key(PETER_VKEY)


# --- the Go reference vector ---------------------------------------------------------------------


def test_go_vector_keys_parse_and_match() -> None:
    signer = parse_signer_key(PETER_SKEY)
    verifier = parse_verifier_key(PETER_VKEY)
    assert signer.name == verifier.name == "PeterNeumann"
    assert signer.key_id == verifier.key_id == 0xC74F20A3
    assert signer.public_key == verifier.public_key
    assert signer.verifier() == verifier


def test_go_vector_key_id_is_sha256_of_name_newline_type_key() -> None:
    verifier = parse_verifier_key(PETER_VKEY)
    digest = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key).digest()
    assert digest[:4].hex() == "c74f20a3"
    assert key_id("PeterNeumann", ALG_ED25519, verifier.public_key) == 0xC74F20A3
    # Another signature type byte gives another ID for the same name and key.
    assert key_id("PeterNeumann", ALG_COSIGNATURE_V1, verifier.public_key) != 0xC74F20A3


def test_go_vector_key_encodings_round_trip() -> None:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]
    assert encode_signer_key("PeterNeumann", seed) == PETER_SKEY
    verifier = parse_verifier_key(PETER_VKEY)
    assert encode_verifier_key("PeterNeumann", verifier.public_key) == PETER_VKEY
    assert verifier.vkey() == PETER_VKEY


def test_go_vector_signs_to_the_same_bytes() -> None:
    signer = parse_signer_key(PETER_SKEY)
    assert sign_note(PETER_TEXT, [signer]) == PETER_NOTE.encode()


def test_go_vector_opens_and_verifies(peter: Verifier) -> None:
    opened = open_note(PETER_NOTE.encode(), [peter])
    assert opened.text == PETER_TEXT
    assert opened.verified == (parse_signature_line(PETER_SIG[:-1]),)
    assert opened.verified[0].key_id == 0xC74F20A3
    assert opened.verified[0].line + "\n" == PETER_SIG
    assert opened.unverified == ()
    text, verified, unverified = opened  # also usable as a plain tuple
    assert (text, len(verified), unverified) == (PETER_TEXT, 1, ())


def test_go_vector_two_signers(peter: Verifier) -> None:
    enoch = parse_verifier_key(ENOCH_VKEY)
    data = (PETER_NOTE + ENOCH_SIG).encode()
    both = open_note(data, [peter, enoch])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"]
    only_peter = open_note(data, [peter])
    assert [s.name for s in only_peter.verified] == ["PeterNeumann"]
    assert [s.name for s in only_peter.unverified] == ["EnochRoot"]


def test_note_without_trusted_signature_is_rejected_but_reported(peter: Verifier) -> None:
    with pytest.raises(UnverifiedNoteError, match="no signature by a trusted key") as exc:
        open_note((PETER_NOTE + ENOCH_SIG).encode(), [])
    assert [s.name for s in exc.value.note.unverified] == ["PeterNeumann", "EnochRoot"]
    with pytest.raises(UnverifiedNoteError):
        open_note((PETER_TEXT + "\n" + ENOCH_SIG).encode(), [peter])


# --- keys ---------------------------------------------------------------------------------------


def test_every_mangled_verifier_key_is_rejected() -> None:
    for i in range(len(PETER_VKEY)):
        for j in range(i + 1, len(PETER_VKEY) + 1):
            if (i, j) != (0, len(PETER_VKEY)):
                with pytest.raises(NoteError):
                    parse_verifier_key(PETER_VKEY[i:j])
    for i, c in enumerate(PETER_VKEY):
        with pytest.raises(NoteError):
            parse_verifier_key(PETER_VKEY[:i] + chr(ord(c) + 1) + PETER_VKEY[i + 1 :])


def test_every_mangled_signer_key_is_rejected() -> None:
    for i in range(len(PETER_SKEY)):
        for j in range(i + 1, len(PETER_SKEY) + 1, 7):
            if (i, j) != (0, len(PETER_SKEY)):
                with pytest.raises(NoteError):
                    parse_signer_key(PETER_SKEY[i:j])
    for i, c in enumerate(PETER_SKEY):
        with pytest.raises(NoteError):
            parse_signer_key(PETER_SKEY[:i] + chr(ord(c) + 1) + PETER_SKEY[i + 1 :])


@pytest.mark.parametrize(
    ("vkey", "reason"),
    [
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hexadecimal"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "base64"),
        ("PeterNeumann+c74f20a3", "must have the form name"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "space"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "empty"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "signature type 0x65"),
    ],
)
def test_bad_verifier_keys_have_reasons(vkey: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        parse_verifier_key(vkey)


def test_witness_type_vkey_is_refused_by_the_note_parser() -> None:
    pub = parse_verifier_key(PETER_VKEY).public_key
    vkey = encode_verifier_key("w.example/1", pub, ALG_COSIGNATURE_V1)
    assert decode_verifier_key(vkey) == ("w.example/1", ALG_COSIGNATURE_V1, pub)
    with pytest.raises(NoteError, match="parse_witness_key"):
        parse_verifier_key(vkey)


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\u00a0b", "a\u3000b", "a\tb"])
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(NoteError):
        Signer.from_seed(name, bytes(32))
    with pytest.raises(NoteError):
        Verifier(name, bytes(32))


def test_signer_repr_hides_the_private_key() -> None:
    signer = Signer.from_seed("example.org/log", bytes(range(32)))
    assert "private" not in repr(signer)
    with pytest.raises(NoteError, match="32 bytes"):
        Signer.from_seed("example.org/log", bytes(31))


# --- round trips --------------------------------------------------------------------------------


def test_round_trip_with_several_signers_and_unicode_text() -> None:
    signers = [Signer(f"example.org/key{i}", Ed25519PrivateKey.generate()) for i in range(3)]
    text = "志愿服务 ledger\n\nan empty line above is allowed\n— even this line\n"
    data = sign_note(text, signers)
    opened = open_note(data, [s.verifier() for s in signers])
    assert opened.text == text
    assert [s.name for s in opened.verified] == [s.name for s in signers]
    assert parse_note(data)[0] == text


def test_sign_note_rejects_bad_input() -> None:
    signer = parse_signer_key(PETER_SKEY)
    for text, reason in [
        ("no newline", "end with a newline"),
        ("crlf\r\n", "carriage return"),
        ("tab\there\n", "U\\+0009"),
        ("bell\x07\n", "U\\+0007"),
    ]:
        with pytest.raises(NoteError, match=reason):
            sign_note(text, [signer])
    with pytest.raises(NoteError, match="at least one signer"):
        sign_note(PETER_TEXT, [])
    with pytest.raises(NoteError, match="twice"):
        sign_note(PETER_TEXT, [signer, signer])


# --- malformed notes ----------------------------------------------------------------------------

_BLOB = PETER_SIG.split(" ")[2].rstrip("\n")

MALFORMED = [
    pytest.param(PETER_TEXT, "no blank line", id="text-only"),
    pytest.param(PETER_TEXT + "\n", "no signature lines", id="no-signatures"),
    pytest.param(PETER_TEXT + PETER_SIG, "no blank line", id="missing-blank-line"),
    pytest.param(PETER_TEXT + "\n" + PETER_SIG[:-1], "does not end with a newline", id="no-final-newline"),
    pytest.param(PETER_NOTE.replace("\n", "\r\n"), "carriage return", id="crlf"),
    pytest.param(PETER_NOTE.replace("\u2014", "-"), "ASCII hyphen-minus", id="ascii-dash"),
    pytest.param(PETER_NOTE.replace("\u2014", "\u2013"), "en dash", id="en-dash"),
    pytest.param(PETER_NOTE.replace("\u2014 ", "\u2014  "), "key name is empty", id="two-spaces"),
    pytest.param(PETER_NOTE.replace("\u2014 ", "\u2014"), "one space", id="no-space"),
    pytest.param("\x01" + PETER_NOTE, "control character U\\+0001", id="control-char"),
    pytest.param(PETER_NOTE.replace("problem,", "problem,\t"), "control character U\\+0009", id="tab"),
    pytest.param(PETER_NOTE.replace("PeterNeumann", "Bad Name"), "more than three fields", id="name-space"),
    pytest.param(PETER_NOTE.replace("PeterNeumann", "Peter+Neumann"), "'\\+'", id="name-plus"),
    pytest.param(PETER_NOTE.replace(_BLOB, _BLOB[:-1]), "base64", id="base64-no-padding"),
    pytest.param(PETER_NOTE.replace(_BLOB, "!" + _BLOB[1:]), "base64", id="base64-alphabet"),
    pytest.param(PETER_NOTE.replace(_BLOB, _BLOB.replace("AM=", "AN=")), "canonical", id="base64-bits"),
    pytest.param(PETER_NOTE.replace(_BLOB, "AAAAAA=="), "4 bytes", id="too-short"),
    pytest.param(PETER_NOTE + "Unexpected line.\n", "signature line 2", id="trailing-line"),
    pytest.param(PETER_TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), "at most 100", id="too-many"),
]


@pytest.mark.parametrize(("note", "reason"), MALFORMED)
def test_malformed_notes_are_rejected_with_a_reason(peter: Verifier, note: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        open_note(note.encode(), [peter])
    with pytest.raises(NoteError, match=reason):
        parse_note(note.encode())


def test_invalid_utf8_is_rejected(peter: Verifier) -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"\xff" + PETER_NOTE.encode(), [peter])


def test_max_signatures_is_accepted(peter: Verifier) -> None:
    opened = open_note((PETER_TEXT + "\n" + PETER_SIG * MAX_SIGNATURES).encode(), [peter])
    assert len(opened.verified) == 1


# --- verification -------------------------------------------------------------------------------


def test_flipped_signature_bit_is_an_invalid_signature(peter: Verifier) -> None:
    blob = bytearray(base64.b64decode(_BLOB))
    blob[10] ^= 0x01
    note = PETER_NOTE.replace(_BLOB, base64.b64encode(bytes(blob)).decode())
    with pytest.raises(InvalidSignatureError, match="PeterNeumann\\+c74f20a3"):
        open_note(note.encode(), [peter])


def test_edited_text_is_an_invalid_signature(peter: Verifier) -> None:
    note = PETER_NOTE.replace("cryptography", "cryptographY")
    with pytest.raises(InvalidSignatureError):
        open_note(note.encode(), [peter])


def test_identical_repeated_lines_are_reported_once(peter: Verifier) -> None:
    opened = open_note((PETER_NOTE + PETER_SIG + ENOCH_SIG + ENOCH_SIG).encode(), [peter])
    assert len(opened.verified) == 1
    assert len(opened.unverified) == 1


def test_a_second_different_signature_by_a_trusted_key_must_verify(peter: Verifier) -> None:
    forged = Signature("PeterNeumann", 0xC74F20A3, bytes(64)).line + "\n"
    with pytest.raises(InvalidSignatureError):
        open_note((PETER_NOTE + forged).encode(), [peter])


def test_near_miss_keys_are_unknown_unless_asked_to_reject(peter: Verifier) -> None:
    wrong_id = Signature("PeterNeumann", 0xC74F20A4, bytes(64)).line + "\n"
    data = (PETER_NOTE + wrong_id).encode()
    opened = open_note(data, [peter])
    assert [s.key_id for s in opened.unverified] == [0xC74F20A4]
    with pytest.raises(UnverifiedNoteError, match="trusted key name with another key ID"):
        open_note(data, [peter], known_unknown="reject")
    with pytest.raises(UnverifiedNoteError, match="another key ID"):
        open_note((PETER_TEXT + "\n" + wrong_id).encode(), [peter])
    other_name = Signature("EnochRoot", 0xC74F20A3, bytes(64)).line + "\n"
    with pytest.raises(UnverifiedNoteError, match="trusted key ID with another key name"):
        open_note((PETER_NOTE + other_name).encode(), [peter], known_unknown="reject")


@dataclass(frozen=True)
class _Impostor:
    name: str
    key_id: int

    def verify(self, message: bytes, signature: bytes) -> bool:
        return True


def test_two_trusted_keys_with_one_name_and_id_are_ambiguous(peter: Verifier) -> None:
    impostor = _Impostor("PeterNeumann", 0xC74F20A3)
    with pytest.raises(NoteError, match="ambiguous key PeterNeumann\\+c74f20a3"):
        open_note(PETER_NOTE.encode(), [peter, impostor])
    # Listing the same key twice is not ambiguous.
    assert open_note(PETER_NOTE.encode(), [peter, peter]).verified
