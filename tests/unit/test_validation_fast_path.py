"""validate_transfer's one-pass check of the common shape against its general path, and request
hashes with a cache of id text against plain ones (both run for every request of a batch)."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain import transfers
from ledger.domain.errors import LedgerError
from ledger.domain.transfers import (
    MAX_AMOUNT,
    MAX_POSTINGS,
    MAX_TIME_US,
    Phase,
    Posting,
    TransferRequest,
    validate_transfer,
)
from ledger.domain.units import Unit

ACCOUNTS = [uuid.UUID(int=(0x0190 << 112) | i) for i in range(1, 13)]


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten, else ``odd``: a fault (or an odd but valid spelling) or two
    per request, so that valid requests, single faults and competing faults all come up."""
    return st.integers(0, 19).flatmap(lambda k: usual if k else odd)


account_ids = _mostly(st.sampled_from(ACCOUNTS), st.sampled_from([str(ACCOUNTS[0]), "nope", "", 7]))
units = _mostly(
    st.sampled_from([Unit.POINTS, Unit.COIN_MINUTES]), st.sampled_from([*Unit, "points", "hours", 1])
)
amounts = _mostly(
    st.integers(-50, 50).filter(bool),
    st.sampled_from([0, True, 1.5, MAX_AMOUNT, -MAX_AMOUNT, MAX_AMOUNT + 1, 2**60]),
)
instants = _mostly(
    st.one_of(st.none(), st.integers(0, 10**16)), st.sampled_from([-1, True, MAX_TIME_US, MAX_TIME_US + 1])
)
ids = _mostly(st.one_of(st.none(), st.uuids()), st.sampled_from([str(ACCOUNTS[0]), "zz", 5]))
metadata = _mostly(
    st.sampled_from(
        [
            {},
            {"a": 1},
            {"a": [1, "文字", None, True], "b": {"c": -2}},
            {"b": False, "z": None},
            {"s": "a b-c"},
        ]
    ),
    st.sampled_from(
        [
            None,
            {"f": 1.5},
            {"t": "e\u0301"},
            {"k\u00e9": 1},
            {1: 2},
            {"n": 2**60},
            [],
            0.0,
            {"c": "a\x01b"},
            {"d\x7f": 1},
        ]
    ),
)


@st.composite
def postings(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 40)) == 0:
        count = draw(st.sampled_from([0, MAX_POSTINGS, MAX_POSTINGS + 1]))
        return tuple(Posting(uuid.UUID(int=i + 1), Unit.POINTS, 1 if i % 2 else -1) for i in range(count))
    if draw(st.integers(0, 4)) == 0:  # balanced pairs in several units, as a service record's credit
        pairs = draw(st.lists(st.sampled_from(list(Unit)), min_size=1, max_size=MAX_POSTINGS // 2))
        out = []
        for unit in pairs:
            amount = draw(amounts)
            credit = -amount if type(amount) is int else amount
            out += [
                Posting(draw(account_ids), unit, amount),
                Posting(draw(account_ids), draw(_mostly(st.just(unit), units)), credit, draw(instants)),
            ]
        return tuple(out)
    unit = draw(units)
    out = [
        Posting(
            draw(account_ids),
            draw(_mostly(st.just(unit), units)),
            draw(amounts),
            draw(st.one_of(st.none(), st.none(), instants)),
        )
        for _ in range(draw(st.integers(1, 4)))
    ]
    if draw(_mostly(st.just(True), st.just(False))) and all(type(p.amount) is int for p in out):
        rest = sum(p.amount for p in out[:-1])  # balance the last posting
        out[-1] = Posting(out[-1].account_id, out[-1].unit, -rest, out[-1].expires_at_us)
    if draw(_mostly(st.just(False), st.just(True))):
        return draw(st.sampled_from([out, (*out, "not a posting")]))  # a list is valid as well
    return tuple(out)


@st.composite
def requests(draw: st.DrawFn) -> TransferRequest:
    return TransferRequest(
        community_id=draw(_mostly(st.just(1), st.sampled_from([0, -3, True, "1"]))),
        kind=draw(
            _mostly(st.sampled_from(["award", "bench_award"]), st.sampled_from(["Award", "", "x" * 49, 3]))
        ),
        postings=draw(postings()),
        idempotency_key=draw(
            _mostly(
                st.sampled_from(["k", "sheet-1:row.2_x"]), st.sampled_from(["bad key!", "", "k" * 129, None])
            )
        ),
        phase=draw(_mostly(st.just(Phase.SINGLE), st.sampled_from([Phase.PENDING, Phase.POST, "single"]))),
        effective_us=draw(_mostly(st.none(), instants)),
        actor_id=draw(ids),
        transfer_id=draw(ids),
        timeout_us=draw(_mostly(st.none(), st.sampled_from([1, 0, True]))),
        metadata=draw(metadata),
    )


def _outcome(check: Any, req: TransferRequest) -> object:
    try:
        check(req)
    except LedgerError as exc:
        return ("fault", exc.code, exc.detail)
    except Exception as exc:  # whatever the general path raises, the fast one must raise too
        return ("raised", type(exc))
    return "valid"


@settings(max_examples=3000)
@given(requests())
def test_the_fast_path_answers_what_the_general_path_answers(req: TransferRequest) -> None:
    general = _outcome(transfers._check_every_field, req)
    assert _outcome(validate_transfer, req) == general
    if transfers._plainly_valid(req):
        assert general == "valid"


def _award(**changes: Any) -> TransferRequest:
    fields: dict[str, Any] = {
        "community_id": 7,
        "kind": "award",
        "postings": (
            Posting(ACCOUNTS[0], Unit.POINTS, -30),
            Posting(ACCOUNTS[1], Unit.POINTS, 30, expires_at_us=1_800_000_000_000_000),
        ),
        "idempotency_key": "sheet-1:row-2",
    }
    fields.update(changes)
    return TransferRequest(**fields)


def test_common_requests_take_the_fast_path() -> None:
    for req in (
        _award(),
        _award(effective_us=1_700_000_000_000_000, actor_id=uuid.uuid4(), transfer_id=uuid.uuid4()),
        _award(metadata={"sheet": "2026-01", "row": 2, "tags": ["a", None, True]}),
        _award(phase=Phase.PENDING),
        _award(
            postings=(Posting(ACCOUNTS[0], Unit.COIN_MINUTES, -5), Posting(ACCOUNTS[1], Unit.COIN_MINUTES, 5))
        ),
        _award(
            postings=(
                Posting(ACCOUNTS[0], Unit.SERVICE_MINUTES, -90),
                Posting(ACCOUNTS[1], Unit.SERVICE_MINUTES, 90),
                Posting(ACCOUNTS[2], Unit.POINTS, -30),
                Posting(ACCOUNTS[3], Unit.POINTS, 30, expires_at_us=1_800_000_000_000_000),
            )
        ),
    ):
        assert transfers._plainly_valid(req), req


def test_unusual_requests_take_the_general_path() -> None:
    as_text: Any = str(ACCOUNTS[0])  # a canonical id as text passes validation
    text_id = (Posting(as_text, Unit.POINTS, -1), Posting(ACCOUNTS[1], Unit.POINTS, 1))
    for req in (
        _award(postings=text_id),
        _award(phase=Phase.PENDING, timeout_us=5),
        _award(postings=list(_award().postings)),
    ):
        assert not transfers._plainly_valid(req), req
        validate_transfer(req)  # valid all the same


@settings(max_examples=500)
@given(requests())
def test_request_hash_with_cached_id_text_is_the_same(req: TransferRequest) -> None:
    try:
        validate_transfer(req)
        plain = req.request_hash()
    except (LedgerError, AttributeError):  # request_hash is defined on validated requests only
        return
    cache: dict[object, str] = {}

    def id_text(value: uuid.UUID) -> str:
        return cache.setdefault(value, str(value))

    assert req.request_hash(id_text) == plain
    assert req.request_hash(id_text) == plain  # from the cache this time
