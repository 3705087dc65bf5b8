"""A person's personal fields (art 5 of the service-record measures) and their validation (stdlib only).

The profile is what ``ledger.privacy`` encrypts; nothing here touches storage or keys. Validation
returns a normalised copy (ID number without spaces and with an upper-case X, phone as 11 digits,
birth date taken from a resident ID when missing) so that equal values are stored, indexed and
compared the same way.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Final, Literal, cast, get_args

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.transfers import check_text

Sex = Literal["male", "female", ""]
IdType = Literal["resident_id", "passport", "other"]

SEXES: Final = frozenset(get_args(Sex))
ID_TYPES: Final = frozenset(get_args(IdType))

ADULT_AGE_YEARS: Final = 18
NAME_MAX_CHARS: Final = 50
RESIDENCE_MAX_CHARS: Final = 200
TAG_MAX_CHARS: Final = 50
TAGS_MAX_COUNT: Final = 30
OTHER_ID_MAX_CHARS: Final = 50
# Nobody alive was born before this; older dates are typing mistakes.
OLDEST_BIRTH_YEAR: Final = 1880

# GB 11643-1999: 17 digits (region, birth date, sequence) and an ISO 7064 MOD 11-2 check character.
_RESIDENT_ID_RE = re.compile(r"[0-9]{17}[0-9X]")
_RESIDENT_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS: Final = "10X98765432"
_PASSPORT_RE = re.compile(r"[A-Z0-9]{5,20}")
_MOBILE_RE = re.compile(r"1[0-9]{10}")
_NON_DIGIT_RE = re.compile(r"[^0-9]")
_SPACE_RE = re.compile(r"\s+")
PROFILE_FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class PersonProfile:
    """The personal fields of one person. A plain value: ``validate_profile`` checks it.

    It is not validated on construction because masked copies (``3201**********1234``) are
    profiles too, for display.
    """

    name: str
    sex: Sex = ""
    birth_date: date | None = None
    id_type: IdType = "resident_id"
    id_number: str | None = None
    phone: str | None = None
    residence: str = ""
    skills: tuple[str, ...] = ()
    service_categories: tuple[str, ...] = ()


# ------------------------------------------------------------------------------ normalisation


def normalise_id_number(value: str) -> str:
    """Spaces out, full-width characters folded (NFKC), letters upper-case (``x`` -> ``X``)."""
    return _SPACE_RE.sub("", unicodedata.normalize("NFKC", value)).upper()


def normalise_phone(value: str) -> str:
    """Digits only, without a leading +86 / 0086 / 86 country code."""
    digits = _NON_DIGIT_RE.sub("", unicodedata.normalize("NFKC", value))
    if len(digits) == 15 and digits.startswith("0086"):
        return digits[4:]
    if len(digits) == 13 and digits.startswith("86"):
        return digits[2:]
    return digits


def resident_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits of a resident ID number."""
    assert len(first17) == 17 and first17.isdigit()
    total = sum(int(d) * w for d, w in zip(first17, _RESIDENT_ID_WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def resident_id_birth_date(id_number: str) -> date | None:
    """The birth date embedded in an 18-character resident ID number, or None if it is no date."""
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------- validation


def validate_profile(profile: PersonProfile, *, today: date | None = None) -> PersonProfile:
    """Check every field and return the normalised profile to store.

    Raises NON_CANONICAL_TEXT for text with control characters or not in NFC (the code every
    service uses for that, and it comes first in precedence), then INVALID_FIELD naming the first
    malformed field. Errors name fields only, never values. ``today`` bounds the birth date.
    """
    _check_canonical(profile)
    name = profile.name.strip()
    if not 1 <= len(name) <= NAME_MAX_CHARS:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="name")
    if profile.sex not in SEXES:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="sex")
    birth_date = profile.birth_date
    if birth_date is not None and not _plausible_birth_date(birth_date, today):
        raise LedgerError(ErrorCode.INVALID_FIELD, field="birth_date")
    if profile.id_type not in ID_TYPES:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="id_type")
    id_number = None
    if profile.id_number is not None:
        id_number = _valid_id_number(profile.id_type, profile.id_number)
        if profile.id_type == "resident_id":
            embedded = resident_id_birth_date(id_number)
            if embedded is None or not _plausible_birth_date(embedded, today):
                raise LedgerError(ErrorCode.INVALID_FIELD, field="id_number")
            if birth_date is not None and birth_date != embedded:
                raise LedgerError(ErrorCode.INVALID_FIELD, field="birth_date")
            # The minor rule must not depend on the clerk also typing the birth date.
            birth_date = embedded
    phone = None
    if profile.phone is not None:
        phone = normalise_phone(profile.phone)
        if not _MOBILE_RE.fullmatch(phone):
            raise LedgerError(ErrorCode.INVALID_FIELD, field="phone")
    residence = profile.residence.strip()
    if len(residence) > RESIDENCE_MAX_CHARS:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="residence")
    return replace(
        profile,
        name=name,
        birth_date=birth_date,
        id_number=id_number,
        phone=phone,
        residence=residence,
        skills=_valid_tags(profile.skills, "skills"),
        service_categories=_valid_tags(profile.service_categories, "service_categories"),
    )


def _check_canonical(profile: PersonProfile) -> None:
    for field_name in ("name", "id_number", "phone", "residence"):
        value = getattr(profile, field_name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise LedgerError(ErrorCode.INVALID_FIELD, field=field_name)
        check_text(value, field_name)
    for field_name in ("skills", "service_categories"):
        tags = getattr(profile, field_name)
        if not isinstance(tags, tuple | list) or not all(isinstance(t, str) for t in tags):
            raise LedgerError(ErrorCode.INVALID_FIELD, field=field_name)
        for tag in tags:
            check_text(tag, field_name)


def _plausible_birth_date(value: date, today: date | None) -> bool:
    return value.year >= OLDEST_BIRTH_YEAR and (today is None or value <= today)


def _valid_id_number(id_type: IdType, raw: str) -> str:
    value = normalise_id_number(raw)
    if id_type == "resident_id":
        if not _RESIDENT_ID_RE.fullmatch(value) or resident_id_check_char(value[:17]) != value[17]:
            raise LedgerError(ErrorCode.INVALID_FIELD, field="id_number")
    elif id_type == "passport":
        if not _PASSPORT_RE.fullmatch(value):
            raise LedgerError(ErrorCode.INVALID_FIELD, field="id_number")
    elif not 1 <= len(value) <= OTHER_ID_MAX_CHARS:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="id_number")
    return value


def _valid_tags(tags: tuple[str, ...], field_name: str) -> tuple[str, ...]:
    out: list[str] = []
    for tag in tags:
        cleaned = tag.strip()
        if not 1 <= len(cleaned) <= TAG_MAX_CHARS:
            raise LedgerError(ErrorCode.INVALID_FIELD, field=field_name)
        if cleaned not in out:  # a repeated skill says nothing more
            out.append(cleaned)
    if len(out) > TAGS_MAX_COUNT:
        raise LedgerError(ErrorCode.INVALID_FIELD, field=field_name)
    return tuple(out)


# ------------------------------------------------------------------------------------------ age


def age_years(birth_date: date, today: date) -> int:
    """Completed years on ``today``; someone born on 29 February has a birthday on 1 March."""
    years = today.year - birth_date.year
    if (today.month, today.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def is_minor(birth_date: date | None, today: date) -> bool:
    """Under 18 on ``today``. An unknown birth date is not treated as a minor's: there is no basis."""
    return birth_date is not None and age_years(birth_date, today) < ADULT_AGE_YEARS


# ------------------------------------------------------------------------------- serialisation


def profile_to_json(profile: PersonProfile) -> bytes:
    """The plaintext that gets encrypted: compact, sorted UTF-8 JSON with a format version."""
    doc = {
        "v": PROFILE_FORMAT_VERSION,
        "name": profile.name,
        "sex": profile.sex,
        "birth_date": None if profile.birth_date is None else profile.birth_date.isoformat(),
        "id_type": profile.id_type,
        "id_number": profile.id_number,
        "phone": profile.phone,
        "residence": profile.residence,
        "skills": list(profile.skills),
        "service_categories": list(profile.service_categories),
    }
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def profile_from_json(data: bytes) -> PersonProfile:
    """Read back what ``profile_to_json`` wrote (it was validated before it was encrypted)."""
    doc: dict[str, Any] = json.loads(data)
    if doc.get("v") != PROFILE_FORMAT_VERSION:
        raise ValueError("unknown profile format version")
    birth = doc["birth_date"]
    return PersonProfile(
        name=str(doc["name"]),
        sex=cast(Sex, doc["sex"]),
        birth_date=None if birth is None else date.fromisoformat(birth),
        id_type=cast(IdType, doc["id_type"]),
        id_number=doc["id_number"],
        phone=doc["phone"],
        residence=str(doc["residence"]),
        skills=tuple(doc["skills"]),
        service_categories=tuple(doc["service_categories"]),
    )
