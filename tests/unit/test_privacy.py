"""The privacy primitives: keyring settings and key file, envelope encryption, blind indexes, masks."""

from __future__ import annotations

import ast
import base64
import stat
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.config import get_settings
from ledger.domain.people import PersonProfile
from ledger.privacy import (
    BLIND_INDEX_BYTES,
    DecryptionError,
    Keyring,
    KeyringError,
    Purpose,
    blind_index,
    decrypt_profile,
    encode_key,
    encrypt_profile,
    generate_key,
    id_number_index,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_profile,
    new_data_key,
    phone_index,
    rewrap_data_key,
    seal_new_profile,
    unwrap_data_key,
    wrap_data_key,
)
from vledger.keys import keys

CID = 7
PID = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")
OTHER_PID = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8058")
PLAINTEXT = '{"name":"张三","id_number":"11010519491231002X"}'.encode()


@dataclass
class FakeSettings:
    master_keys: str | None
    blind_index_key: str | None
    data_dir: Path


# ------------------------------------------------------------------------------------ keyring


def test_parse_settings_first_key_is_active() -> None:
    k1, k2, blind = generate_key(), generate_key(), generate_key()
    ring = Keyring.parse(f"k2:{encode_key(k2)}, k1:{encode_key(k1)}", encode_key(blind))
    assert ring.active_key_id == "k2"
    assert ring.key_ids == ("k2", "k1")
    assert ring.master_key("k1") == k1 and ring.blind_index_key == blind
    assert encode_key(k2) not in repr(ring) and "k2" in repr(ring)


@pytest.mark.parametrize(
    ("master", "blind", "message"),
    [
        ("k1", None, "must look like"),
        ("k1:not base64!", None, "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), None, "32 bytes"),
        ("k1:{k},k1:{k}", None, "appears twice"),
        ("bad id!:{k}", None, "malformed"),
        ("k1:{k}", "AAAA", "VLEDGER_BLIND_INDEX_KEY must decode to 32 bytes"),
    ],
)
def test_malformed_settings_give_clear_errors_without_key_material(
    master: str, blind: str | None, message: str
) -> None:
    key = encode_key(generate_key())
    blind_key = blind or encode_key(generate_key())
    with pytest.raises(KeyringError, match=message) as info:
        Keyring.parse(master.format(k=key), blind_key)
    assert isinstance(info.value, ValueError)
    assert key not in str(info.value) and blind_key not in str(info.value)


def test_from_settings_uses_configured_keys(tmp_path: Path) -> None:
    k1, blind = generate_key(), generate_key()
    settings = FakeSettings(f"k1:{encode_key(k1)}", encode_key(blind), tmp_path)
    ring = Keyring.from_settings(settings)
    assert ring.master_key("k1") == k1
    assert not (tmp_path / "keys.json").exists()


def test_from_settings_refuses_half_a_configuration(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="both"):
        Keyring.from_settings(FakeSettings(f"k1:{encode_key(generate_key())}", None, tmp_path))


def test_key_file_is_created_private_once_and_reloaded(tmp_path: Path) -> None:
    settings = FakeSettings(None, None, tmp_path / "var")
    first = Keyring.from_settings(settings)
    path = tmp_path / "var" / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Keyring.from_settings(settings)
    assert first.active_key_id == second.active_key_id == "k1"
    assert first.master_key("k1") == second.master_key("k1")
    assert first.blind_index_key == second.blind_index_key
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary file left behind


def test_malformed_key_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text('{"master_keys": []}', encoding="utf-8")
    with pytest.raises(KeyringError, match="malformed"):
        Keyring.from_settings(FakeSettings(None, None, tmp_path))


# ----------------------------------------------------------------------------------- envelope


def test_seal_and_open_round_trip() -> None:
    ring = Keyring.generate()
    sealed = seal_new_profile(ring, CID, PID, PLAINTEXT)
    assert sealed.key_id == "k1"
    assert sealed.profile_enc[0] == 1 and sealed.wrapped_key[0] == 1  # version bytes
    assert PLAINTEXT not in sealed.profile_enc
    dek = unwrap_data_key(ring, CID, PID, sealed.key_id, sealed.wrapped_key)
    assert decrypt_profile(dek, CID, PID, sealed.profile_enc) == PLAINTEXT


def test_nonces_are_fresh_for_every_encryption() -> None:
    dek = new_data_key()
    a, b = encrypt_profile(dek, CID, PID, PLAINTEXT), encrypt_profile(dek, CID, PID, PLAINTEXT)
    assert a != b and a[1:13] != b[1:13]


def test_a_profile_moved_to_another_person_or_community_does_not_decrypt() -> None:
    dek = new_data_key()
    ciphertext = encrypt_profile(dek, CID, PID, PLAINTEXT)
    with pytest.raises(DecryptionError):
        decrypt_profile(dek, CID, OTHER_PID, ciphertext)
    with pytest.raises(DecryptionError):
        decrypt_profile(dek, CID + 1, PID, ciphertext)


def test_another_persons_data_key_does_not_decrypt() -> None:
    ring = Keyring.generate()
    mine = seal_new_profile(ring, CID, PID, PLAINTEXT)
    theirs = seal_new_profile(ring, CID, OTHER_PID, PLAINTEXT)
    their_dek = unwrap_data_key(ring, CID, OTHER_PID, theirs.key_id, theirs.wrapped_key)
    with pytest.raises(DecryptionError):
        decrypt_profile(their_dek, CID, PID, mine.profile_enc)
    # Their wrapped key copied onto my row does not unwrap either: the AAD names the person.
    with pytest.raises(DecryptionError):
        unwrap_data_key(ring, CID, PID, theirs.key_id, theirs.wrapped_key)


def test_tampering_and_unknown_formats_are_detected() -> None:
    dek = new_data_key()
    ciphertext = bytearray(encrypt_profile(dek, CID, PID, PLAINTEXT))
    ciphertext[-1] ^= 1
    with pytest.raises(DecryptionError, match="authentication"):
        decrypt_profile(dek, CID, PID, bytes(ciphertext))
    ciphertext[-1] ^= 1
    ciphertext[0] = 2
    with pytest.raises(DecryptionError, match="format"):
        decrypt_profile(dek, CID, PID, bytes(ciphertext))
    with pytest.raises(DecryptionError, match="truncated"):
        decrypt_profile(dek, CID, PID, b"\x01short")


def test_wrapped_key_is_bound_to_its_master_key_id() -> None:
    key = generate_key()
    ring = Keyring({"k1": key, "k2": key}, generate_key())  # same bytes, different ids
    key_id, wrapped = wrap_data_key(ring, CID, PID, new_data_key())
    assert key_id == "k1"
    with pytest.raises(DecryptionError):
        unwrap_data_key(ring, CID, PID, "k2", wrapped)
    with pytest.raises(KeyringError, match="not in the keyring"):
        unwrap_data_key(ring, CID, PID, "k9", wrapped)


def test_rewrap_moves_a_key_to_the_new_master_key_and_the_old_one_can_go() -> None:
    old = Keyring.generate("k1")
    sealed = seal_new_profile(old, CID, PID, PLAINTEXT)
    new_key = generate_key()
    rotating = Keyring({"k2": new_key, "k1": old.master_key("k1")}, old.blind_index_key)
    key_id, wrapped = rewrap_data_key(rotating, CID, PID, sealed.key_id, sealed.wrapped_key)
    assert key_id == "k2" and wrapped != sealed.wrapped_key
    after = Keyring({"k2": new_key}, old.blind_index_key)
    dek = unwrap_data_key(after, CID, PID, key_id, wrapped)
    assert decrypt_profile(dek, CID, PID, sealed.profile_enc) == PLAINTEXT


# ------------------------------------------------------------------------------ blind indexes


def test_equivalent_id_spellings_index_equal_and_different_numbers_differ() -> None:
    ring = Keyring.generate()
    a = id_number_index(ring, "11010519491231002X")
    assert a == id_number_index(ring, "11010519491231002x")
    assert a == id_number_index(ring, " 110105 19491231 002X ")
    assert len(a) == BLIND_INDEX_BYTES
    assert a != id_number_index(ring, "110105194912310037")


def test_equivalent_phone_spellings_index_equal() -> None:
    ring = Keyring.generate()
    a = phone_index(ring, "13812345678")
    for spelling in ("+86 138 1234 5678", "8613812345678", "138-1234-5678", "0086 13812345678"):
        assert phone_index(ring, spelling) == a
    assert phone_index(ring, "13812345679") != a


def test_index_depends_on_key_and_purpose() -> None:
    ring, other = Keyring.generate(), Keyring.generate()
    digits = "13812345678"
    assert blind_index(ring, Purpose.PHONE, digits) != blind_index(other, Purpose.PHONE, digits)
    assert blind_index(ring, Purpose.PHONE, digits) != blind_index(ring, Purpose.ID_NUMBER, digits)


# ------------------------------------------------------------------------------------ masking


def test_masking_examples() -> None:
    assert mask_id_number("320102199001011234") == "3201**********1234"
    assert mask_id_number("E12345678") == "E123*5678"
    assert mask_id_number("AB1234") == "A****4"
    assert mask_phone("13812345678") == "138****5678"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"


def test_mask_profile_masks_only_identifying_fields() -> None:
    p = PersonProfile(
        name="张三丰",
        birth_date=date(1990, 1, 1),
        id_number="320102199001011234",
        phone="13812345678",
        residence="幸福社区",
    )
    masked = mask_profile(p)
    assert (masked.name, masked.id_number, masked.phone) == ("张**", "3201**********1234", "138****5678")
    assert masked.residence == "幸福社区" and masked.birth_date == p.birth_date
    assert mask_profile(PersonProfile(name="李四")).id_number is None


# ------------------------------------------------------------------------------------ the CLI


def test_cli_generate_prints_a_usable_key() -> None:
    runner = CliRunner()
    plain = runner.invoke(keys, ["generate"])
    assert plain.exit_code == 0
    assert len(base64.b64decode(plain.output.strip(), validate=True)) == 32
    with_id = runner.invoke(keys, ["generate", "--key-id", "k2"])
    assert with_id.exit_code == 0
    ring = Keyring.parse(with_id.output.strip(), encode_key(generate_key()))
    assert ring.active_key_id == "k2"
    assert runner.invoke(keys, ["generate", "--key-id", "bad id"]).exit_code == 1


def test_cli_rotate_needs_configured_master_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLEDGER_MASTER_KEYS", raising=False)
    monkeypatch.delenv("VLEDGER_BLIND_INDEX_KEY", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(keys, ["rotate"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "VLEDGER_MASTER_KEYS" in result.output


def test_privacy_imports_no_services_api_jobs_or_cli() -> None:
    package = Path(blind_index.__module__.replace(".", "/")).parent
    root = Path(__file__).resolve().parents[2]
    forbidden = ("ledger.services", "api", "jobs", "vledger")
    sources = sorted((root / package).glob("*.py"))
    assert len(sources) >= 5
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in forbidden), (source, name)
