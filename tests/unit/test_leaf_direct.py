"""transfer_leaf_template (the write paths' direct encoder) against the general leaf encoder."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.audit import leaf
from ledger.audit.jcs import MAX_SAFE_INTEGER
from ledger.audit.leaf import LeafTemplate, leaf_template, transfer_leaf_body, transfer_leaf_template

UNITS = ("service_minutes", "points", "coin_minutes", "score_points")
ids = st.one_of(st.uuids(), st.uuids().map(str), st.text(max_size=8))  # text: the caller's own
# Mostly the alphabet the domain allows, sometimes anything (then the general encoder takes over).
plain_text = st.from_regex(r"[a-z][a-z0-9_.:\-]{0,20}", fullmatch=True)
any_text = st.text(max_size=12)
texts = st.one_of(plain_text, plain_text, any_text)
ints = st.one_of(st.integers(0, MAX_SAFE_INTEGER), st.integers(-(2**60), 2**60))


@st.composite
def postings(draw: st.DrawFn) -> list[tuple[uuid.UUID | str, str, int]]:
    out: list[tuple[uuid.UUID | str, str, int]] = []
    for unit in draw(st.lists(st.sampled_from(UNITS), min_size=1, max_size=3)):
        amounts = draw(st.lists(st.integers(1, 10**9), min_size=1, max_size=3))
        out.extend((draw(ids), unit, amount) for amount in amounts)
        out.append((draw(ids), unit, -sum(amounts)))
    if draw(st.integers(0, 9)) == 0:  # sometimes unbalanced: both encoders must refuse it
        account_id, unit, amount = out[0]
        out[0] = (account_id, unit, amount + 1)
    return out


@st.composite
def leaf_args(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "origin": draw(st.one_of(st.just("vledger.local/community/7"), any_text)),
        "transfer_id": draw(ids),
        "kind": draw(texts),
        "phase": draw(st.sampled_from(["single", "pending", "post", "void", "other"])),
        "effective_us": draw(ints),
        "recorded_us": draw(ints),
        "actor": draw(st.none() | ids),
        "idempotency_key": draw(texts),
        "postings": draw(postings()),
        "reverses": draw(st.none() | ids),
        "pending_id": draw(st.none() | ids),
        "timeout_us": draw(st.none() | ints),
    }


def _general(args: dict[str, Any]) -> LeafTemplate:
    body = transfer_leaf_body(
        **{
            **args,
            "transfer_id": str(args["transfer_id"]),
            "actor": None if args["actor"] is None else str(args["actor"]),
            "postings": [(str(a), u, n) for a, u, n in args["postings"]],
            "reverses": None if args["reverses"] is None else str(args["reverses"]),
            "pending_id": None if args["pending_id"] is None else str(args["pending_id"]),
        }
    )
    return leaf_template(body)


def _outcome(build: Any, args: dict[str, Any]) -> LeafTemplate | type[Exception]:
    try:
        return build(args)  # type: ignore[no-any-return]
    except ValueError as exc:  # CanonicalError is a ValueError
        return type(exc)


@given(leaf_args())
def test_direct_template_equals_the_general_one(args: dict[str, Any]) -> None:
    direct = _outcome(lambda a: transfer_leaf_template(**a), args)
    assert direct == _outcome(_general, args)


def test_direct_template_on_a_typical_transfer() -> None:
    args: dict[str, Any] = {
        "origin": "vledger.local/community/7",
        "transfer_id": uuid.UUID("01900000-0000-7000-8000-000000000001"),
        "kind": "award",
        "phase": "single",
        "effective_us": 1_735_689_600_000_000,
        "recorded_us": 1_735_689_600_123_456,
        "actor": None,
        "idempotency_key": "sheet-1:row-2",
        "postings": [
            (uuid.UUID("01900000-0000-7000-8000-00000000000a"), "points", -30),
            (uuid.UUID("01900000-0000-7000-8000-00000000000b"), "points", 30),
        ],
        "reverses": None,
        "pending_id": None,
        "timeout_us": None,
    }
    leaf = transfer_leaf_template(**args).render(5, bytes(32))
    assert leaf == _general(args).render(5, bytes(32))
    assert leaf.startswith(b'{"actor":null,"effective_us":1735689600000000,"id":"01900000-')
    assert b',"index":5,"kind":"award",' in leaf
    assert leaf.endswith(b'"timeout_us":null,"type":"transfer","v":1}')


@pytest.mark.parametrize("as_text", [False, True])
def test_typical_transfers_take_the_direct_path(monkeypatch: pytest.MonkeyPatch, as_text: bool) -> None:
    """The write paths pass UUIDs (single path) or their text (batch path); neither may fall back."""

    def refuse(*_: object) -> None:
        raise AssertionError("the general encoder ran")

    monkeypatch.setattr(leaf, "_general_template", refuse)
    name = str if as_text else (lambda u: u)
    transfer_leaf_template(
        origin="vledger.local/community/7",
        transfer_id=name(uuid.uuid4()),
        kind="award",
        phase="pending",
        effective_us=1,
        recorded_us=2,
        actor=name(uuid.uuid4()),
        idempotency_key="sheet-1:row-2",
        postings=[(name(uuid.uuid4()), "points", -3), (name(uuid.uuid4()), "points", 3)],
        reverses=name(uuid.uuid4()),
        pending_id=name(uuid.uuid4()),
        timeout_us=5,
    )


@pytest.mark.parametrize("kind", ["Award", "奖励", 'a"b', "a\\b", "a\nb"])
def test_text_that_is_not_plain_ascii_takes_the_general_encoder(kind: str) -> None:
    args: dict[str, Any] = {
        "origin": "o",
        "transfer_id": uuid.uuid4(),
        "kind": kind,
        "phase": "single",
        "effective_us": 1,
        "recorded_us": 2,
        "actor": None,
        "idempotency_key": "k",
        "postings": [(uuid.uuid4(), "points", -1), (uuid.uuid4(), "points", 1)],
        "reverses": None,
        "pending_id": None,
        "timeout_us": None,
    }
    assert _outcome(lambda a: transfer_leaf_template(**a), args) == _outcome(_general, args)
