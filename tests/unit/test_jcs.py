"""Unit tests for the restricted RFC 8785 (JCS) canonical JSON encoder and strict parser."""

from __future__ import annotations

import enum
import json
import unicodedata
from collections import OrderedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.jcs import (
    MAX_SAFE_INTEGER,
    CanonicalError,
    canonical_json,
    canonical_members,
    parse_canonical,
)

# --- known outputs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, b"null"),
        (True, b"true"),
        (False, b"false"),
        (0, b"0"),
        (-17, b"-17"),
        (MAX_SAFE_INTEGER, b"9007199254740991"),
        (-MAX_SAFE_INTEGER, b"-9007199254740991"),
        ("", b'""'),
        ("plain", b'"plain"'),
        ('say "hi"', b'"say \\"hi\\""'),
        ("back\\slash", b'"back\\\\slash"'),
        ('\\"', b'"\\\\\\""'),
        ("志愿服务", '"志愿服务"'.encode()),
        ("café", '"café"'.encode()),
        ("emoji 😀", '"emoji 😀"'.encode()),
        ("/ and \u2028", '"/ and \u2028"'.encode()),  # no escaping of '/' or U+2028
        ([], b"[]"),
        ({}, b"{}"),
        ((), b"[]"),
        ([[]], b"[[]]"),
        ({"a": {}}, b'{"a":{}}'),
        ([1, "a", None, True], b'[1,"a",null,true]'),
        ({"b": 1, "a": 2, "c": 3}, b'{"a":2,"b":1,"c":3}'),
        ({"b": [1, {"z": 0, "y": [True, False]}], "a": None}, b'{"a":null,"b":[1,{"y":[true,false],"z":0}]}'),
        ({"index": 1, "id": 2, "idempotency_key": 3}, b'{"id":2,"idempotency_key":3,"index":1}'),
        ({"B": 1, "a": 2, "_": 3, "1": 4}, b'{"1":4,"B":1,"_":3,"a":2}'),  # ASCII (code point) order
        ({'q"k': 1, "b\\k": 2}, b'{"b\\\\k":2,"q\\"k":1}'),
        ({"k": "志愿服务"}, '{"k":"志愿服务"}'.encode()),
        ({"k": 'v"'}, b'{"k":"v\\""}'),
        (
            {"postings": [("a", "points", 5), ("b", "points", -5)]},
            b'{"postings":[["a","points",5],["b","points",-5]]}',
        ),
    ],
)
def test_known_outputs(value: object, expected: bytes) -> None:
    assert canonical_json(value) == expected


def test_bool_is_encoded_as_bool_not_int() -> None:
    assert canonical_json({"flag": True, "n": 1}) == b'{"flag":true,"n":1}'
    assert canonical_json([False, 0]) == b"[false,0]"


def test_subclasses_of_supported_types_encode_as_their_base() -> None:
    class Colour(enum.IntEnum):
        RED = 7

    class Unit(enum.StrEnum):
        POINTS = "points"

    value = OrderedDict([("z", Colour.RED), ("a", Unit.POINTS)])
    assert canonical_json(value) == b'{"a":"points","z":7}'


def test_repeated_calls_use_the_same_bytes() -> None:
    # Exercises the key-set cache: first call fills it, later calls and reordered dicts hit it.
    first = canonical_json({"y": 1, "x": "a"})
    assert canonical_json({"y": 1, "x": "a"}) == first
    assert canonical_json({"x": "a", "y": 1}) == first == b'{"x":"a","y":1}'


def test_needs_escaping_after_cached_shape() -> None:
    canonical_json({"s": "plain"})
    assert canonical_json({"s": 'q"'}) == b'{"s":"q\\""}'
    assert canonical_json({"s": "\\"}) == b'{"s":"\\\\"}'


def test_canonical_members() -> None:
    members = canonical_members({"v": 1, "postings": [["a", "u", -1]], "kind": "志"})
    assert members == [
        ("kind", '"kind":"志"'),
        ("postings", '"postings":[["a","u",-1]]'),
        ("v", '"v":1'),
    ]
    assert canonical_members({}) == []
    with pytest.raises(CanonicalError) as info:
        canonical_members({"a": [1.5]})
    assert info.value.path == "$.a[0]"


# --- rejections --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "fragment"),
    [
        (1.0, "$", "float"),
        (0.5, "$", "float"),
        (float("nan"), "$", "float"),
        ({"a": 2.5}, "$.a", "float"),
        ({"postings": [["a", "b", 1], ["c", "d", 1.5]]}, "$.postings[1][2]", "float"),
        (MAX_SAFE_INTEGER + 1, "$", "range"),
        (-MAX_SAFE_INTEGER - 1, "$", "range"),
        ([2**64], "$[0]", "range"),
        ({"é": 1}, "$", "not ASCII"),
        ({"x": {"志愿": 1}}, "$.x", "not ASCII"),
        ({1: "a"}, "$", "not a string"),
        ({"a": 1, 2: "b"}, "$", "not a string"),
        ({"x": [{(1, 2): 3}]}, "$.x[0]", "not a string"),
        ({"a\x01": 1}, "$", "control character U+0001"),
        ("tab\there", "$", "control character U+0009"),
        ("nl\n", "$", "control character U+000A"),
        ("nul\x00", "$", "control character U+0000"),
        ("del\x7f", "$", "control character U+007F"),
        ("c1\x85", "$", "control character U+0085"),
        ("c1 \x9f 志", "$", "control character U+009F"),
        ("e\u0301", "$", "NFC"),
        ({"name": "Ame\u0301lie"}, "$.name", "NFC"),
        ("\u212b", "$", "NFC"),  # ANGSTROM SIGN normalizes to U+00C5
        ("\ud800", "$", "surrogate"),
        ({"a b": ["x", "\udfff"]}, '$["a b"][1]', "surrogate"),
        (b"bytes", "$", "unsupported type bytes"),
        ({"s": {1, 2}}, "$.s", "unsupported type set"),
        ([object()], "$[0]", "unsupported type object"),
    ],
)
def test_rejections(value: object, path: str, fragment: str) -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_json(value)
    assert info.value.path == path
    assert fragment in info.value.message
    assert str(info.value) == f"{path}: {info.value.message}"
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "value",
    [
        {"name": "张三\x01"},
        {"phone": "13800138000\n"},
        {"id_number": "110101199003071234\x00"},
        {"name": "Zoe\u0308"},  # non-NFC
        {"张三": 1},  # the key itself
        ["Müller\ud800"],
    ],
)
def test_errors_never_echo_the_offending_string(value: object) -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_json(value)
    text = str(info.value) + repr(info.value)
    for secret in ("张三", "13800138000", "110101199003071234", "Zoe", "Müller"):
        assert secret not in text


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    value: list[object] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(CanonicalError):
        canonical_json(value)


# --- strict parser -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"null",
        b"0",
        b"-1",
        b"9007199254740991",
        b"-9007199254740991",
        b'""',
        b"[]",
        b"{}",
        b'{"a":[1,"x",null,true,false],"b":{}}',
        '{"k":"志愿服务"}'.encode(),
        b'"q\\"b\\\\"',
    ],
)
def test_parse_canonical_accepts_canonical_bytes(data: bytes) -> None:
    value = parse_canonical(data)
    assert canonical_json(value) == data


def test_parse_canonical_returns_values() -> None:
    assert parse_canonical(b'{"a":[1,"x",null,true],"b":-2}') == {"a": [1, "x", None, True], "b": -2}
    assert parse_canonical(b"true") is True


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"a":1,"a":2}', "duplicate"),
        (b'{"a":1,"a":1}', "duplicate"),
        (b'{"x":[{"b":1,"b":2}]}', "duplicate"),
        (b'{"a": 1}', "not canonical"),
        (b" 1", "not canonical"),
        (b"1 ", "not canonical"),
        (b"1\n", "not canonical"),
        (b"[1, 2]", "not canonical"),
        (b'{"b":1,"a":2}', "not canonical"),
        (b"1.0", "fraction or exponent"),
        (b"1e3", "fraction or exponent"),
        (b"1E3", "fraction or exponent"),
        (b"0.5", "fraction or exponent"),
        (b'{"a":[1.5]}', "fraction or exponent"),
        (b"-0", "negative zero"),
        (b"[-0]", "negative zero"),
        (b"01", "not valid JSON"),
        (b"-01", "not valid JSON"),
        (b"+1", "not valid JSON"),
        (b"9007199254740992", "range"),
        (b"-9007199254740992", "range"),
        (b"99999999999999999999999999", "range"),
        (b"1" * 5000, "range"),
        (b"NaN", "NaN"),
        (b"Infinity", "NaN"),
        (b"-Infinity", "NaN"),
        (b"\xff", "UTF-8"),
        (b'"\xc3"', "UTF-8"),
        (b'"\xc0\xaf"', "UTF-8"),  # overlong encoding of '/'
        (b'"\xed\xa0\x80"', "UTF-8"),  # UTF-8-encoded surrogate
        (b"\xef\xbb\xbf1", "not valid JSON"),  # byte order mark
        (b'{"a":1}x', "not valid JSON"),
        (b'{"a":1}{}', "not valid JSON"),
        (b"[1,]", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"'a'", "not valid JSON"),
        (b'"tab\there"', "not valid JSON"),  # raw control character in a string
        (b'"\\u0001"', "control character"),  # escaped control character
        (b'"\\u0085"', "control character"),
        ('"\u0085"'.encode(), "control character"),  # raw C1 control
        (b'"\\u0041"', "not canonical"),  # unnecessary escape
        (b'"\\/"', "not canonical"),
        (b'"\\u00e9"', "not canonical"),
        (b'"\\ud800"', "surrogate"),
        ('"e\u0301"'.encode(), "NFC"),
        ('{"é":1}'.encode(), "not ASCII"),
    ],
)
def test_parse_canonical_rejects(data: bytes, fragment: str) -> None:
    with pytest.raises(CanonicalError) as info:
        parse_canonical(data)
    assert fragment in info.value.message


def test_parse_canonical_reports_paths() -> None:
    with pytest.raises(CanonicalError) as info:
        parse_canonical(b'{"x":[{"b":1,"b":2}]}')
    assert info.value.path == "$.x[0]"
    with pytest.raises(CanonicalError) as info:
        parse_canonical(b'{"postings":[["a","b",1],["c","d",1.5]]}')
    assert info.value.path == "$.postings[1][2]"
    with pytest.raises(CanonicalError) as info:
        parse_canonical(b'{"b":1,"a":2}')
    assert "byte offset 2" in info.value.message


def test_parse_canonical_rejects_deep_nesting() -> None:
    with pytest.raises(CanonicalError):
        parse_canonical(b"[" * 100_000 + b"]" * 100_000)


# --- properties --------------------------------------------------------------------------------

_ascii_keys = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8)
_strings = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
    max_size=12,
).map(lambda s: unicodedata.normalize("NFC", s))
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | _strings
)
_json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_ascii_keys, children, max_size=6),
    max_leaves=40,
)


@given(_json_values)
def test_round_trip(value: object) -> None:
    data = canonical_json(value)
    parsed = parse_canonical(data)
    assert parsed == value
    assert canonical_json(parsed) == data


@given(_json_values)
def test_matches_an_independent_encoder(value: object) -> None:
    # For values within the restrictions, stdlib json with sorted keys, no whitespace and literal
    # UTF-8 produces exactly the JCS output (ASCII keys sort the same in UTF-16 and code points).
    expected = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert canonical_json(value) == expected.encode("utf-8")


@given(st.dictionaries(_ascii_keys, _json_values, max_size=8))
def test_members_join_to_the_object(value: dict[str, object]) -> None:
    members = canonical_members(value)
    assert [k for k, _ in members] == sorted(value)
    assert ("{" + ",".join(m for _, m in members) + "}").encode("utf-8") == canonical_json(value)
