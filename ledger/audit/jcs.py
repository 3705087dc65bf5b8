"""Restricted RFC 8785 (JCS) canonical JSON: the byte encoding of audit-log leaves."""

from __future__ import annotations

import json
import re
import unicodedata

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalError",
    "canonical_json",
    "canonical_members",
    "parse_canonical",
]

#: Largest integer magnitude allowed (the IEEE 754 double "safe integer" bound used by JCS).
MAX_SAFE_INTEGER = 2**53 - 1

# Characters no string may contain: C0 controls, DEL and C1 controls, and lone surrogates.
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Objects seen before, by their keys in insertion order: the keys sorted, each with its encoded
# '"key":' prefix. Leaves use a few fixed key sets, so this saves validating, sorting and escaping
# keys on every call. Bounded; entries are never removed, so concurrent readers are safe.
_Shape = tuple[tuple[str, ...], tuple[tuple[str, str], ...]]
_SHAPE_CACHE: dict[tuple[object, ...], _Shape] = {}
_SHAPE_CACHE_MAX_ENTRIES = 1024
_SHAPE_CACHE_MAX_KEYS = 64
_SHAPE_CACHE_MAX_KEY_LEN = 64


class CanonicalError(ValueError):
    """A value cannot be encoded canonically, or bytes are not canonical JSON.

    ``path`` locates the problem (``$`` is the root, e.g. ``$.postings[1][2]``). The message says
    what is wrong but never repeats the offending string, which may be personal data.
    """

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{path}: {message}")
        self.message = message
        self.path = path


class _Reject(Exception):  # noqa: N818 - internal control flow, converted to CanonicalError
    """Raised inside the encoder; containers append their path segment on the way out."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.segments: list[str | int] = []  # innermost first


class _Invalid:
    """Placeholder the strict parser puts where the input held something not allowed."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _DuplicateKeysDict(dict[str, object]):
    """An object the strict parser read with a repeated key (the last value won)."""


def _format_path(segments: list[str | int]) -> str:
    parts = ["$"]
    for seg in reversed(segments):
        if isinstance(seg, int):
            parts.append(f"[{seg}]")
        elif _IDENTIFIER.fullmatch(seg):
            parts.append("." + seg)
        else:
            parts.append("[" + json.dumps(seg) + "]")
    return "".join(parts)


# The careful encoder (_encode and helpers) checks every value, escapes strings, and reports the
# first problem with its path. canonical_json runs it only when the optimistic encoder below fails.


def _check_text(s: str, what: str) -> None:
    """Raise _Reject if ``s`` holds a forbidden character or is not NFC. Never echoes ``s``."""
    m = _BAD_CHARS.search(s)
    if m is not None:
        cp = ord(m.group())
        if 0xD800 <= cp <= 0xDFFF:
            raise _Reject(f"{what} contains a lone surrogate at offset {m.start()}")
        raise _Reject(f"{what} contains control character U+{cp:04X} at offset {m.start()}")
    if not s.isascii() and not unicodedata.is_normalized("NFC", s):
        raise _Reject(f"{what} is not in Unicode normalization form NFC")


def _encode_str(s: str) -> str:
    # Fast path: printable ASCII needs no further checks (isprintable excludes U+0000-U+001F, U+007F).
    if not (s.isascii() and s.isprintable()):
        _check_text(s, "string")
    if '"' in s or "\\" in s:
        s = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s + '"'


def _key_problem(key: object) -> str | None:
    """What is wrong with an object key, or None. Never names the key."""
    if not isinstance(key, str):
        return f"object key is not a string (found {type(key).__name__})"
    if not key.isascii():
        return "object key is not ASCII"
    if not key.isprintable():
        try:
            _check_text(key, "object key")
        except _Reject as e:
            return e.message
    return None


def _encode_key(key: str) -> str:
    """Encoded '"key":' prefix of a key _key_problem accepted."""
    return _encode_str(str.__str__(key)) + ":"


def _shape(d: dict[str, object]) -> _Shape:
    """Validate an object's keys; return them sorted with their encoded '"key":' prefixes."""
    problem = next(filter(None, map(_key_problem, d)), None)
    if problem is not None:
        raise _Reject(problem)
    # For ASCII keys, code point order equals the UTF-16 code unit order JCS specifies.
    keys = tuple(sorted(d))
    shape = (keys, tuple([(k, _encode_key(k)) for k in keys]))
    if (
        len(_SHAPE_CACHE) < _SHAPE_CACHE_MAX_ENTRIES
        and len(keys) <= _SHAPE_CACHE_MAX_KEYS
        and all(type(k) is str and len(k) <= _SHAPE_CACHE_MAX_KEY_LEN for k in keys)
    ):
        _SHAPE_CACHE[tuple(d)] = shape
    return shape


def _dict_parts(d: dict[str, object]) -> tuple[tuple[str, ...], list[str]]:
    """Sorted keys of an object and its '"key":value' member texts, in the same order.

    A bad key is reported at the object's own path (the key itself may be personal data).
    """
    shape = _SHAPE_CACHE.get(tuple(d))
    if shape is None:
        shape = _shape(d)
    parts: list[str] = []
    k = ""
    try:
        for k, ek in shape[1]:
            parts.append(ek + _encode(d[k]))
    except _Reject as e:
        e.segments.append(k)
        raise
    return shape[0], parts


def _encode_list(items: list[object] | tuple[object, ...]) -> str:
    parts: list[str] = []
    try:
        for v in items:
            parts.append(_encode(v))
    except _Reject as e:
        e.segments.append(len(parts))  # the index of the item that failed
        raise
    return "[" + ",".join(parts) + "]"


_INT_RANGE_MESSAGE = "integer is outside the range -(2**53-1) .. 2**53-1"


def _encode(value: object) -> str:  # noqa: PLR0911 - flat type dispatch on the hot path
    if type(value) is str:
        return _encode_str(value)
    if type(value) is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return str(value)
        raise _Reject(_INT_RANGE_MESSAGE)
    if type(value) is dict:
        return "{" + ",".join(_dict_parts(value)[1]) + "}"
    if type(value) is list or type(value) is tuple:
        return _encode_list(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    return _encode_other(value)


def _encode_other(value: object) -> str:
    """Slow path: subclasses of the supported types, and rejections."""
    if isinstance(value, float):
        raise _Reject("floats are not allowed; use integers (amounts in minor units)")
    if isinstance(value, _Invalid):
        raise _Reject(value.reason)
    if isinstance(value, _DuplicateKeysDict):
        raise _Reject("object has a duplicate key")
    if isinstance(value, int):  # int subclasses such as IntEnum (bool is handled by the caller)
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return int.__repr__(value)  # not str(): an IntEnum's str() is its name
        raise _Reject(_INT_RANGE_MESSAGE)
    if isinstance(value, str):
        return _encode_str(str.__str__(value))
    if isinstance(value, dict):
        return "{" + ",".join(_dict_parts(value)[1]) + "}"
    if isinstance(value, list | tuple):
        return _encode_list(value)
    raise _Reject(f"unsupported type {type(value).__name__}")


class _Slow(Exception):  # noqa: N818 - internal control flow
    """The optimistic encoder met something it leaves to the careful one."""


# The optimistic encoder (_fast_*) handles exact built-in types only. It writes strings unescaped
# and unchecked, collecting them in ``strs`` so that the caller checks them all at once
# (_plain_strings); it raises _Slow for anything else. If either fails, the careful encoder
# (_encode, _dict_parts) runs instead and produces the same bytes or the precise error.


def _fast_members(d: dict[str, object], strs: list[str]) -> tuple[tuple[str, ...], list[str]]:
    shape = _SHAPE_CACHE.get(tuple(d))
    if shape is None:
        try:
            shape = _shape(d)
        except _Reject:
            raise _Slow from None
    parts: list[str] = []
    for k, ek in shape[1]:
        v = d[k]
        if type(v) is str:
            strs.append(v)
            parts.append(ek + '"' + v + '"')
        elif type(v) is int and -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
            parts.append(ek + str(v))
        elif v is None:
            parts.append(ek + "null")
        elif type(v) is list:
            parts.append(ek + _fast_list(v, strs))
        else:
            parts.append(ek + _fast(v, strs))
    return shape[0], parts


def _fast_list(items: list[object] | tuple[object, ...], strs: list[str]) -> str:
    parts: list[str] = []
    for v in items:
        if type(v) is str:
            strs.append(v)
            parts.append('"' + v + '"')
        elif type(v) is int and -MAX_SAFE_INTEGER <= v <= MAX_SAFE_INTEGER:
            parts.append(str(v))
        else:
            parts.append(_fast(v, strs))
    return "[" + ",".join(parts) + "]"


def _fast(value: object, strs: list[str]) -> str:  # noqa: PLR0911 - flat type dispatch
    if type(value) is dict:
        return "{" + ",".join(_fast_members(value, strs)[1]) + "}"
    if type(value) is list or type(value) is tuple:
        return _fast_list(value, strs)
    if type(value) is str:
        strs.append(value)
        return '"' + value + '"'
    if type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    raise _Slow


def _plain_strings(strs: list[str]) -> bool:
    """True if every string is allowed as it is and needs no escaping."""
    joined = "".join(strs)
    if '"' in joined or "\\" in joined:
        return False
    if joined.isascii():
        return joined.isprintable()
    if _BAD_CHARS.search(joined) is not None:
        return False
    is_normalized = unicodedata.is_normalized
    return all(s.isascii() or is_normalized("NFC", s) for s in strs)


def canonical_json(value: object) -> bytes:
    """Encode ``value`` as restricted JCS canonical JSON (UTF-8 bytes).

    Accepts None, bool, int (|n| <= 2**53-1), str (NFC, no control characters, no lone
    surrogates), list/tuple and dict with ASCII string keys. Raises CanonicalError otherwise.
    """
    strs: list[str] = []
    try:
        text = _fast(value, strs)
    except (_Slow, RecursionError):
        pass
    else:
        if _plain_strings(strs):
            return text.encode("utf-8")
    try:
        return _encode(value).encode("utf-8")
    except _Reject as e:
        raise CanonicalError(e.message, _format_path(e.segments)) from None
    except RecursionError:
        raise CanonicalError("value is nested too deeply") from None


def canonical_members(obj: dict[str, object]) -> list[tuple[str, str]]:
    """Sorted ``(key, '"key":value')`` pairs, each member text exactly as in canonical output."""
    if not isinstance(obj, dict):
        raise CanonicalError(f"expected an object (found {type(obj).__name__})")
    if type(obj) is dict:
        strs: list[str] = []
        try:
            keys, parts = _fast_members(obj, strs)
        except (_Slow, RecursionError):
            pass
        else:
            if _plain_strings(strs):
                return list(zip(keys, parts, strict=True))
    try:
        keys, parts = _dict_parts(obj)
    except _Reject as e:
        raise CanonicalError(e.message, _format_path(e.segments)) from None
    except RecursionError:
        raise CanonicalError("value is nested too deeply") from None
    return list(zip(keys, parts, strict=True))


def _strict_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    d = dict(pairs)
    if len(d) != len(pairs):
        return _DuplicateKeysDict(d)
    return d


def _strict_int(text: str) -> object:
    if text == "-0":
        return _Invalid("negative zero is not allowed")
    # Bound the digit count before int() so huge literals cost nothing (2**53-1 has 16 digits).
    if len(text.lstrip("-")) > 16:
        return _Invalid("integer is outside the range -(2**53-1) .. 2**53-1")
    return int(text)  # the encoder checks the exact bound


def _strict_float(_text: str) -> object:
    return _Invalid("number has a fraction or exponent; only integers are allowed")


def _strict_constant(_text: str) -> object:
    return _Invalid("NaN and Infinity are not allowed")


def parse_canonical(data: bytes) -> object:
    """Parse bytes that must be exactly the restricted canonical JSON of the value they hold.

    Rejects (with CanonicalError) invalid UTF-8, invalid JSON, duplicate keys, non-integer
    numbers, ``-0``, out-of-range integers, forbidden strings, and any byte that differs from
    the canonical encoding (whitespace, key order, unnecessary escapes, ...).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CanonicalError(f"expected bytes (found {type(data).__name__})")
    data = bytes(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CanonicalError(f"not valid UTF-8 (byte offset {e.start})") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_strict_pairs,
            parse_int=_strict_int,
            parse_float=_strict_float,
            parse_constant=_strict_constant,
        )
    except json.JSONDecodeError as e:
        offset = len(text[: e.pos].encode("utf-8"))
        raise CanonicalError(f"not valid JSON: {e.msg} (byte offset {offset})") from None
    except RecursionError:
        raise CanonicalError("value is nested too deeply") from None
    # Re-encoding reports disallowed values (with their path); then the bytes must match exactly.
    encoded = canonical_json(value)
    if encoded != data:
        offset = next(
            (i for i, (a, b) in enumerate(zip(encoded, data, strict=False)) if a != b),
            min(len(encoded), len(data)),
        )
        raise CanonicalError(f"not canonical (first difference at byte offset {offset})")
    return value
