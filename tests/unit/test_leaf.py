"""Unit tests for leaf hashing, leaf templates and the transfer leaf format."""

from __future__ import annotations

import enum
import hashlib
import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit.jcs import MAX_SAFE_INTEGER, CanonicalError, canonical_json
from ledger.audit.leaf import (
    LEAF_VERSION,
    ZERO_HASH,
    LeafTemplate,
    decode_leaf,
    encode_leaf,
    leaf_hash,
    leaf_template,
    node_hash,
    origin_for,
    transfer_leaf_body,
)

# --- hashes ------------------------------------------------------------------------------------


def test_leaf_hash() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    # RFC 6962 / RFC 9162 hash of the empty leaf.
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b'{"v":1}') == hashlib.sha256(b'\x00{"v":1}').digest()
    assert len(leaf_hash(b"x")) == 32


def test_node_hash() -> None:
    left, right = bytes(range(32)), bytes(range(32, 64))
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert node_hash(left, right) != node_hash(right, left)
    # Domain separation: a leaf never hashes like a node over the same bytes.
    assert node_hash(left, right) != leaf_hash(left + right)


def test_constants_and_origin() -> None:
    assert LEAF_VERSION == 1
    assert ZERO_HASH == b"\x00" * 32
    assert origin_for("ledger.example.org", 42) == "ledger.example.org/community/42"


# --- transfer leaf test vectors (also published in docs/reference/leaves.md) --------------------

ORIGIN = "ledger.example.org/community/42"


def _first_body() -> dict[str, object]:
    return transfer_leaf_body(
        origin=origin_for("ledger.example.org", 42),
        transfer_id="tr_01JGQ8Z3K4M5N6P7Q8R9S0T1V2",
        kind="award",
        phase="single",
        effective_us=1735689600000000,
        recorded_us=1735689600123456,
        actor="u_3f9a1c7e",
        idempotency_key="award-2025-0001",
        postings=[
            ("acct_c42_issuance", "service_minutes", -90),
            ("acct_m1001", "service_minutes", 90),
            ("acct_c42_issuance", "points", -30),
            ("acct_m1001", "points", 30),
        ],
        reverses=None,
        pending_id=None,
        timeout_us=None,
    )


def _second_body() -> dict[str, object]:
    return transfer_leaf_body(
        origin=ORIGIN,
        transfer_id="tr_01JGQ9A1B2C3D4E5F6G7H8J9K0",
        kind="reversal",
        phase="single",
        effective_us=1735776000000000,
        recorded_us=1735776000654321,
        actor="u_8b2d4f60",
        idempotency_key="reversal-2025-0001",
        postings=[
            ("acct_m1001", "service_minutes", -90),
            ("acct_c42_issuance", "service_minutes", 90),
            ("acct_m1001", "points", -30),
            ("acct_c42_issuance", "points", 30),
        ],
        reverses="tr_01JGQ8Z3K4M5N6P7Q8R9S0T1V2",
        pending_id=None,
        timeout_us=None,
    )


FIRST_LEAF = (
    b'{"actor":"u_3f9a1c7e","effective_us":1735689600000000,"id":"tr_01JGQ8Z3K4M5N6P7Q8R9S0T1V2",'
    b'"idempotency_key":"award-2025-0001","index":0,"kind":"award",'
    b'"origin":"ledger.example.org/community/42","pending_id":null,"phase":"single",'
    b'"postings":[["acct_c42_issuance","service_minutes",-90],["acct_m1001","service_minutes",90],'
    b'["acct_c42_issuance","points",-30],["acct_m1001","points",30]],'
    b'"prev":"0000000000000000000000000000000000000000000000000000000000000000",'
    b'"recorded_us":1735689600123456,"reverses":null,"timeout_us":null,"type":"transfer","v":1}'
)
FIRST_LEAF_HASH = "43bac8ddc1086973484bdddfb3497f805c2642fb78fc7bf81c5e64d6deaba01f"

SECOND_LEAF = (
    b'{"actor":"u_8b2d4f60","effective_us":1735776000000000,"id":"tr_01JGQ9A1B2C3D4E5F6G7H8J9K0",'
    b'"idempotency_key":"reversal-2025-0001","index":1,"kind":"reversal",'
    b'"origin":"ledger.example.org/community/42","pending_id":null,"phase":"single",'
    b'"postings":[["acct_m1001","service_minutes",-90],["acct_c42_issuance","service_minutes",90],'
    b'["acct_m1001","points",-30],["acct_c42_issuance","points",30]],'
    b'"prev":"43bac8ddc1086973484bdddfb3497f805c2642fb78fc7bf81c5e64d6deaba01f",'
    b'"recorded_us":1735776000654321,"reverses":"tr_01JGQ8Z3K4M5N6P7Q8R9S0T1V2","timeout_us":null,'
    b'"type":"transfer","v":1}'
)
SECOND_LEAF_HASH = "3a461f433c8c8a5bf3eeb5c456e6a4efc689cca785a324aa18ee02534086b912"


def test_first_transfer_leaf_vector() -> None:
    leaf = encode_leaf(_first_body(), 0, ZERO_HASH)
    assert leaf == FIRST_LEAF
    assert leaf_hash(leaf).hex() == FIRST_LEAF_HASH
    assert hashlib.sha256(b"\x00" + FIRST_LEAF).hexdigest() == FIRST_LEAF_HASH


def test_second_transfer_leaf_vector_chains_to_the_first() -> None:
    leaf = encode_leaf(_second_body(), 1, leaf_hash(FIRST_LEAF))
    assert leaf == SECOND_LEAF
    assert leaf_hash(leaf).hex() == SECOND_LEAF_HASH
    assert decode_leaf(SECOND_LEAF)["prev"] == FIRST_LEAF_HASH


def test_transfer_body_has_a_fixed_key_set() -> None:
    body = _first_body()
    assert list(body) == [
        "v",
        "type",
        "origin",
        "id",
        "kind",
        "phase",
        "effective_us",
        "recorded_us",
        "actor",
        "idempotency_key",
        "postings",
        "reverses",
        "pending_id",
        "timeout_us",
    ]
    assert body["v"] == 1
    assert body["type"] == "transfer"
    assert body["postings"] == [
        ["acct_c42_issuance", "service_minutes", -90],
        ["acct_m1001", "service_minutes", 90],
        ["acct_c42_issuance", "points", -30],
        ["acct_m1001", "points", 30],
    ]


def test_pending_transfer_with_timeout_and_no_actor() -> None:
    body = transfer_leaf_body(
        origin=ORIGIN,
        transfer_id="tr_p",
        kind="redemption",
        phase="pending",
        effective_us=1,
        recorded_us=2,
        actor=None,
        idempotency_key="k",
        postings=[("a", "coin_minutes", 60), ("b", "coin_minutes", -60)],
        reverses=None,
        pending_id=None,
        timeout_us=3_600_000_000,
    )
    leaf = encode_leaf(body, 7, bytes(range(32)))
    assert b'"actor":null' in leaf
    assert b'"timeout_us":3600000000' in leaf
    decoded = decode_leaf(leaf)
    assert decoded["index"] == 7
    assert decoded["prev"] == bytes(range(32)).hex()
    assert decoded["phase"] == "pending"


def test_decode_leaf_round_trip() -> None:
    decoded = decode_leaf(FIRST_LEAF)
    assert decoded == {**_first_body(), "index": 0, "prev": "0" * 64}


# --- templates ---------------------------------------------------------------------------------


def test_template_fragments() -> None:
    template = leaf_template(_first_body())
    assert isinstance(template, LeafTemplate)
    assert template.prefix.endswith(b',"index":')
    assert template.middle.startswith(b',"kind":')
    assert template.middle.endswith(b',"prev":"')
    assert template.suffix.startswith(b'","recorded_us":')
    assert template.suffix.endswith(b',"v":1}')
    # What the database does: one concatenation of the fragments with the decimal index and hex prev.
    index, prev = 0, ZERO_HASH
    joined = template.prefix + str(index).encode() + template.middle + prev.hex().encode() + template.suffix
    assert joined == FIRST_LEAF


def test_template_with_no_keys_around_index_and_prev() -> None:
    # Only "origin" falls between "index" and "prev"; "v" falls after; nothing falls before.
    template = leaf_template({"v": 1, "origin": "o"})
    assert template.prefix == b'{"index":'
    assert template.middle == b',"origin":"o","prev":"'
    assert template.suffix == b'","v":1}'
    assert template.render(0, ZERO_HASH) == b'{"index":0,"origin":"o","prev":"' + b"0" * 64 + b'","v":1}'


def test_index_zero_with_zero_hash() -> None:
    decoded = decode_leaf(encode_leaf({"v": 1, "origin": ORIGIN, "type": "x"}, 0, ZERO_HASH))
    assert decoded["index"] == 0
    assert decoded["prev"] == "0" * 64


@pytest.mark.parametrize("key", ["index", "prev"])
def test_template_rejects_chain_keys_in_the_body(key: str) -> None:
    with pytest.raises(ValueError, match="index"):
        leaf_template({"v": 1, "origin": ORIGIN, key: 0})


@pytest.mark.parametrize(
    "body",
    [
        {"origin": ORIGIN},
        {"v": "1", "origin": ORIGIN},
        {"v": True, "origin": ORIGIN},
        {"v": 1},
        {"v": 1, "origin": None},
    ],
)
def test_template_requires_version_and_origin(body: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r'"v"|"origin"'):
        leaf_template(body)


def test_template_rejects_values_that_are_not_canonical() -> None:
    with pytest.raises(CanonicalError) as info:
        leaf_template({"v": 1, "origin": ORIGIN, "amount": 1.5})
    assert info.value.path == "$.amount"


@pytest.mark.parametrize(
    ("index", "prev"),
    [
        (-1, ZERO_HASH),
        (MAX_SAFE_INTEGER + 1, ZERO_HASH),
        (True, ZERO_HASH),
        (1.0, ZERO_HASH),
        (0, bytes(31)),
        (0, bytes(33)),
        (0, "00" * 32),
    ],
)
def test_render_rejects_bad_index_or_prev(index: Any, prev: Any) -> None:
    template = leaf_template({"v": 1, "origin": ORIGIN})
    with pytest.raises(ValueError, match=r"index|prev"):
        template.render(index, prev)


_ascii_keys = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10).filter(
    lambda k: k not in ("index", "prev", "v", "origin")
)
_strings = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=12).map(
    lambda s: unicodedata.normalize("NFC", s)
)
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | _strings,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_ascii_keys, children, max_size=4),
    max_leaves=20,
)
# Keys near "index" and "prev" in sort order, so that every split of the template gets exercised.
_near_keys = st.sampled_from(
    ["id", "idempotency_key", "indey", "indexa", "j", "kind", "p", "phase", "pres", "prevb", "q"]
)


@given(
    origin=_strings,
    extra=st.dictionaries(_near_keys | _ascii_keys, _values, max_size=8),
    index=st.integers(min_value=0, max_value=MAX_SAFE_INTEGER),
    prev=st.binary(min_size=32, max_size=32),
)
def test_template_render_equals_canonical_json(
    origin: str, extra: dict[str, object], index: int, prev: bytes
) -> None:
    body: dict[str, object] = {"v": LEAF_VERSION, "origin": origin, **extra}
    expected = canonical_json({**body, "index": index, "prev": prev.hex()})
    assert leaf_template(body).render(index, prev) == expected
    assert encode_leaf(body, index, prev) == expected
    decoded = decode_leaf(expected)
    assert decoded["index"] == index
    assert decoded["prev"] == prev.hex()


# --- invalid transfer bodies -------------------------------------------------------------------


def _transfer(**overrides: Any) -> dict[str, object]:
    args: dict[str, Any] = {
        "origin": ORIGIN,
        "transfer_id": "tr_1",
        "kind": "award",
        "phase": "single",
        "effective_us": 1,
        "recorded_us": 2,
        "actor": "u_1",
        "idempotency_key": "k1",
        "postings": [("a", "points", 5), ("b", "points", -5)],
        "reverses": None,
        "pending_id": None,
        "timeout_us": None,
    }
    args.update(overrides)
    return transfer_leaf_body(**args)


def test_valid_transfer_helper() -> None:
    assert _transfer()["postings"] == [["a", "points", 5], ["b", "points", -5]]


@pytest.mark.parametrize(
    ("postings", "match"),
    [
        ([], "at least one posting"),
        ((), "at least one posting"),
        ([("a", "points", 0)], "non-zero"),
        ([("a", "points", 5), ("b", "points", 0), ("c", "points", -5)], "non-zero"),
        ([("a", "points", 5), ("b", "service_minutes", -5)], "points, service_minutes"),
        ([("a", "points", 5)], "points"),
        ([("a", "points", 5), ("b", "points", -4)], "points"),
        ([("a", "points", 5), ("b", "points", -5), ("c", "coin_minutes", 1)], "coin_minutes"),
        ([("a", "points", True), ("b", "points", -1)], "non-zero integer"),
        ([("a", "points", 1.0), ("b", "points", -1.0)], "non-zero integer"),
        ([("a", "points"), ("b", "points", -1)], "posting 0"),
        ([("a", 1, 1), ("b", 1, -1)], "strings"),
    ],
)
def test_invalid_postings_are_rejected(postings: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _transfer(postings=postings)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phase", "posted"),
        ("phase", ""),
        ("phase", None),
        ("kind", ["award"]),
        ("transfer_id", 1),
        ("origin", None),
        ("actor", 5),
        ("effective_us", 1.5),
        ("recorded_us", True),
        ("timeout_us", "soon"),
        ("reverses", b"tr_0"),
    ],
)
def test_invalid_fields_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        _transfer(**{field: value})


def test_enum_and_subclass_values_become_plain_json_values() -> None:
    class Kind(enum.StrEnum):
        AWARD = "award"

    class Phase(enum.StrEnum):
        SINGLE = "single"

    class Micros(int):
        pass

    body = _transfer(kind=Kind.AWARD, phase=Phase.SINGLE, effective_us=Micros(5), actor=Kind.AWARD)
    assert type(body["kind"]) is str
    assert type(body["phase"]) is str
    assert type(body["effective_us"]) is int
    assert body == _transfer(kind="award", phase="single", effective_us=5, actor="award")


def test_balanced_multi_unit_transfer_is_accepted() -> None:
    postings = [
        ("a", "points", 5),
        ("b", "service_minutes", 30),
        ("c", "points", -5),
        ("d", "service_minutes", -30),
    ]
    body = _transfer(postings=postings)
    assert body["postings"] == [list(p) for p in postings]


# --- decode_leaf -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"origin": "o", "index": 0, "prev": "0" * 64}, "$.v"),
        ({"v": "1", "origin": "o", "index": 0, "prev": "0" * 64}, "$.v"),
        ({"v": 2, "origin": "o", "index": 0, "prev": "0" * 64}, "$.v"),
        ({"v": 1, "index": 0, "prev": "0" * 64}, "$.origin"),
        ({"v": 1, "origin": 5, "index": 0, "prev": "0" * 64}, "$.origin"),
        ({"v": 1, "origin": "o", "prev": "0" * 64}, "$.index"),
        ({"v": 1, "origin": "o", "index": -1, "prev": "0" * 64}, "$.index"),
        ({"v": 1, "origin": "o", "index": "0", "prev": "0" * 64}, "$.index"),
        ({"v": 1, "origin": "o", "index": True, "prev": "0" * 64}, "$.index"),
        ({"v": 1, "origin": "o", "index": 0}, "$.prev"),
        ({"v": 1, "origin": "o", "index": 0, "prev": "0" * 63}, "$.prev"),
        ({"v": 1, "origin": "o", "index": 0, "prev": "A" * 64}, "$.prev"),
        ({"v": 1, "origin": "o", "index": 0, "prev": None}, "$.prev"),
        ([1, 2], "$"),
    ],
)
def test_decode_leaf_rejects_missing_or_mistyped_common_keys(value: object, path: str) -> None:
    with pytest.raises(CanonicalError) as info:
        decode_leaf(canonical_json(value))
    assert info.value.path == path


@pytest.mark.parametrize(
    "data",
    [
        FIRST_LEAF.replace(b'"v":1}', b'"v":1 }'),
        FIRST_LEAF.replace(b'"v":1}', b'"v":1.0}'),
        FIRST_LEAF[:-1],
        FIRST_LEAF + b"\n",
        FIRST_LEAF.replace(b'"kind":"award"', b'"kind":"award","kind":"award"'),
        FIRST_LEAF.replace(b'"kind":"award",', b"").replace(b'"actor"', b'"kind":"award","actor"'),
    ],
)
def test_decode_leaf_rejects_non_canonical_bytes(data: bytes) -> None:
    with pytest.raises(CanonicalError):
        decode_leaf(data)
