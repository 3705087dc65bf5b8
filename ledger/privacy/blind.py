"""Keyed blind indexes: find and de-duplicate ID and phone numbers without decrypting any profile.

``HMAC-SHA256(blind key, purpose || 0x00 || normalised value)`` truncated to 16 bytes. The key makes
the index useless to someone holding only the database (an unkeyed hash of an 18-digit ID number
with an embedded birth date is brute-forced in minutes); the purpose keeps an ID number and a phone
number with the same digits apart; 128 bits make accidental collisions negligible.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum

from ledger.domain.people import normalise_id_number, normalise_phone
from ledger.privacy.keyring import Keyring

BLIND_INDEX_BYTES = 16


class Purpose(StrEnum):
    ID_NUMBER = "id_number"
    PHONE = "phone"


def blind_index(keyring: Keyring, purpose: Purpose, value: str) -> bytes:
    """The index of ``value`` after the purpose's normalisation (equivalent spellings index equal)."""
    normalised = normalise_id_number(value) if purpose is Purpose.ID_NUMBER else normalise_phone(value)
    message = purpose.value.encode() + b"\x00" + normalised.encode()
    return hmac.new(keyring.blind_index_key, message, hashlib.sha256).digest()[:BLIND_INDEX_BYTES]


def id_number_index(keyring: Keyring, id_number: str) -> bytes:
    return blind_index(keyring, Purpose.ID_NUMBER, id_number)


def phone_index(keyring: Keyring, phone: str) -> bytes:
    return blind_index(keyring, Purpose.PHONE, phone)
