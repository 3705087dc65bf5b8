"""Display masks for personal fields: what staff without full access and public pages may see.

Masks keep the length, so a masked value still looks like what it stands for.
"""

from __future__ import annotations

from dataclasses import replace

from ledger.domain.people import PersonProfile

MASK = "*"


def _keep(value: str, head: int, tail: int) -> str:
    return value[:head] + MASK * (len(value) - head - tail) + value[len(value) - tail :]


def mask_id_number(value: str) -> str:
    """``320102199001011234`` -> ``3201**********1234``; short numbers keep less so something is hidden."""
    if len(value) > 8:
        return _keep(value, 4, 4)
    if len(value) > 2:
        return _keep(value, 1, 1)
    return MASK * len(value)


def mask_phone(value: str) -> str:
    """``13812345678`` -> ``138****5678``."""
    if len(value) >= 8:
        return _keep(value, 3, 4)
    return MASK * len(value)


def mask_name(value: str) -> str:
    """``张三丰`` -> ``张**``: the first character and one star per remaining character."""
    return value[:1] + MASK * (len(value) - 1)


def mask_name_on_certificate(value: str) -> str:
    """``张三丰`` -> ``张*丰``, ``李四`` -> ``李*``: the style of printed certificates, which keep the
    first and (for names of three or more characters) the last character."""
    if len(value) <= 1:
        return MASK * len(value)
    if len(value) == 2:
        return value[0] + MASK
    return value[0] + MASK * (len(value) - 2) + value[-1]


def mask_profile(profile: PersonProfile) -> PersonProfile:
    """The profile with name, ID number and phone masked; the other fields are not identifying alone."""
    return replace(
        profile,
        name=mask_name(profile.name),
        id_number=None if profile.id_number is None else mask_id_number(profile.id_number),
        phone=None if profile.phone is None else mask_phone(profile.phone),
    )
