"""Personal fields: resident ID check digits and birth dates, phones, text rules, minors, JSON form."""

from __future__ import annotations

import ast
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.people import (
    PersonProfile,
    age_years,
    is_minor,
    normalise_id_number,
    normalise_phone,
    profile_from_json,
    profile_to_json,
    resident_id_birth_date,
    resident_id_check_char,
    validate_profile,
)

# The specimen number printed in GB 11643-1999 (Beijing Chaoyang, born 1949-12-31).
SPECIMEN = "11010519491231002X"
TODAY = date(2026, 6, 1)


def resident_id(birth: date, seq: int = 123, region: str = "320102") -> str:
    first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
    return first17 + resident_id_check_char(first17)


def profile(**changes: object) -> PersonProfile:
    base = PersonProfile(
        name="张三",
        sex="male",
        birth_date=date(1990, 1, 1),
        id_type="resident_id",
        id_number=resident_id(date(1990, 1, 1)),
        phone="13812345678",
        residence="幸福社区 3 栋",
        skills=("理发",),
        service_categories=("助老",),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def fails(p: PersonProfile, code: ErrorCode = ErrorCode.INVALID_FIELD) -> str | None:
    with pytest.raises(LedgerError) as info:
        validate_profile(p, today=TODAY)
    assert info.value.code == code
    return info.value.field


def test_specimen_check_character_and_birth_date() -> None:
    assert resident_id_check_char(SPECIMEN[:17]) == "X"
    assert resident_id_birth_date(SPECIMEN) == date(1949, 12, 31)
    ok = validate_profile(profile(id_number=SPECIMEN, birth_date=date(1949, 12, 31)), today=TODAY)
    assert ok.id_number == SPECIMEN


def test_wrong_check_character_is_refused_naming_only_the_field() -> None:
    good = resident_id(date(1990, 1, 1))
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    with pytest.raises(LedgerError) as info:
        validate_profile(profile(id_number=bad), today=TODAY)
    assert info.value.code == ErrorCode.INVALID_FIELD and info.value.field == "id_number"
    # The number itself never appears in the error (it is logged and returned to clients).
    assert bad not in str(info.value) and bad not in str(info.value.to_dict())


@pytest.mark.parametrize(
    "number",
    [
        "1101051949123100",  # 16 characters: too short
        "11010519491231002XX",  # too long
        "1101051949123100AX",  # a letter among the digits
        "110105194913310021",  # month 13 (check character made valid below)
    ],
)
def test_malformed_resident_ids_are_refused(number: str) -> None:
    if len(number) == 18 and number[:17].isdigit():
        number = number[:17] + resident_id_check_char(number[:17])
    assert fails(profile(id_number=number, birth_date=None)) == "id_number"


def test_birth_date_must_match_the_id_number() -> None:
    assert fails(profile(birth_date=date(1990, 1, 2))) == "birth_date"


def test_birth_date_is_taken_from_the_id_number_when_missing() -> None:
    number = resident_id(date(2012, 5, 20))
    ok = validate_profile(profile(id_number=number, birth_date=None), today=TODAY)
    assert ok.birth_date == date(2012, 5, 20)


def test_id_number_and_phone_are_normalised() -> None:
    ok = validate_profile(
        profile(id_number=" 110105 19491231 002x", birth_date=None, phone="+86 138-1234-5678"), today=TODAY
    )
    assert ok.id_number == SPECIMEN
    assert ok.phone == "13812345678"
    assert normalise_id_number("１１０１０５１９４９１２３１００２ｘ") == SPECIMEN  # full-width input
    assert normalise_phone("008613812345678") == normalise_phone("8613812345678") == "13812345678"


@pytest.mark.parametrize("phone", ["1381234567", "138123456789", "23812345678", "", "电话"])
def test_bad_phones_are_refused(phone: str) -> None:
    assert fails(profile(phone=phone)) == "phone"


def test_no_phone_and_no_id_number_are_allowed() -> None:
    ok = validate_profile(profile(phone=None, id_number=None), today=TODAY)
    assert ok.phone is None and ok.id_number is None and ok.birth_date == date(1990, 1, 1)


def test_passport_and_other_documents() -> None:
    ok = validate_profile(profile(id_type="passport", id_number="e12345678"), today=TODAY)
    assert ok.id_number == "E12345678"
    assert fails(profile(id_type="passport", id_number="E12-345")) == "id_number"
    other = validate_profile(profile(id_type="other", id_number="港澳居民来往内地通行证H1234"), today=TODAY)
    assert other.id_number == "港澳居民来往内地通行证H1234"
    assert fails(profile(id_type="other", id_number="  ")) == "id_number"


def test_names_are_1_to_50_characters_after_trimming() -> None:
    assert validate_profile(profile(name="  李四 "), today=TODAY).name == "李四"
    assert fails(profile(name="   ")) == "name"
    assert fails(profile(name="张" * 51)) == "name"
    assert validate_profile(profile(name="张" * 50), today=TODAY).name == "张" * 50


def test_control_characters_and_non_nfc_text_are_non_canonical() -> None:
    assert fails(profile(name="张\x00三"), ErrorCode.NON_CANONICAL_TEXT) == "name"
    assert fails(profile(residence="Cafe\u0301"), ErrorCode.NON_CANONICAL_TEXT) == "residence"
    assert fails(profile(skills=("理发\n",)), ErrorCode.NON_CANONICAL_TEXT) == "skills"


def test_enumerations_and_dates() -> None:
    assert fails(profile(sex="unknown")) == "sex"
    assert fails(profile(id_type="driving_licence")) == "id_type"
    assert fails(profile(id_number=None, birth_date=date(2026, 6, 2))) == "birth_date"  # tomorrow
    assert fails(profile(id_number=None, birth_date=date(1850, 1, 1))) == "birth_date"
    assert validate_profile(profile(sex=""), today=TODAY).sex == ""


def test_tags_are_trimmed_deduplicated_and_bounded() -> None:
    ok = validate_profile(profile(skills=(" 理发", "理发", "维修")), today=TODAY)
    assert ok.skills == ("理发", "维修")
    assert fails(profile(skills=("",))) == "skills"
    assert fails(profile(service_categories=("类" * 51,))) == "service_categories"
    assert fails(profile(skills=tuple(f"技能{i}" for i in range(31)))) == "skills"


def test_minor_is_under_18_on_the_day() -> None:
    born = date(2008, 6, 1)
    assert is_minor(born, date(2026, 5, 31))
    assert not is_minor(born, date(2026, 6, 1))
    assert not is_minor(None, TODAY)
    # Born on 29 February: 18 on 1 March of a common year.
    assert is_minor(date(2008, 2, 29), date(2026, 2, 28))
    assert not is_minor(date(2008, 2, 29), date(2026, 3, 1))
    assert age_years(date(1990, 1, 1), TODAY) == 36


def test_profile_json_round_trip_and_version() -> None:
    p = validate_profile(profile(), today=TODAY)
    data = profile_to_json(p)
    assert profile_from_json(data) == p
    assert "张三".encode() in data  # UTF-8, not \\u escapes: the ciphertext is no longer than it must be
    with pytest.raises(ValueError, match="version"):
        profile_from_json(data.replace(b'"v":1', b'"v":2'))


def test_module_imports_only_the_standard_library_and_the_domain() -> None:
    source = Path(sys.modules[validate_profile.__module__].__file__ or "").read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    outside = {
        m
        for m in imported
        if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("ledger.domain")
    }
    assert outside == set()
