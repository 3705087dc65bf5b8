"""SingleTransferLeaves (the batch path's leaf writer) against transfer_leaf_template: the same bytes,
or the same error, for typical and odd values, leaf after leaf."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.audit import leaf
from ledger.audit.jcs import MAX_SAFE_INTEGER
from ledger.audit.leaf import SingleTransferLeaves, leaf_hash, transfer_leaf_template

ORIGIN = "test.vledger/community/7"
ACCOUNTS = [str(uuid.UUID(int=(0x0190 << 112) | i)) for i in range(1, 6)]


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten, else ``odd``."""
    return st.integers(0, 9).flatmap(lambda k: usual if k else odd)


odd_text = st.one_of(st.text(max_size=6), st.sampled_from(['a"b', "a\\b", "é", "a\nb", 5, None, b"x", ["x"]]))
ids = _mostly(st.one_of(st.sampled_from(ACCOUNTS), st.uuids()), odd_text)
ints = _mostly(
    st.integers(0, 2 * 10**15), st.sampled_from([-1, MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, True, 1.5, None])
)


@st.composite
def postings(draw: st.DrawFn) -> Any:
    unit = draw(_mostly(st.sampled_from(["points", "coin_minutes"]), odd_text))
    amounts = draw(
        st.lists(_mostly(st.integers(1, 10**6), st.sampled_from([0, True, 2**60, 1.5])), max_size=3)
    )
    out: list[Any] = [(draw(ids), unit, amount) for amount in amounts]
    if all(type(amount) is int for amount in amounts):
        out.append((draw(ids), unit, -sum(amounts) + draw(_mostly(st.just(0), st.just(1)))))
    if draw(_mostly(st.just(False), st.just(True))):
        out.append(draw(st.sampled_from([(ACCOUNTS[0], "points"), (ACCOUNTS[0], "points", 1, 2), ()])))
    return draw(_mostly(st.just(out), st.sampled_from([tuple(out), []])))


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "index": draw(_mostly(st.integers(0, 10**9), st.sampled_from([-1, MAX_SAFE_INTEGER + 1, True, 1.0]))),
        "prev": draw(
            _mostly(st.binary(min_size=32, max_size=32), st.sampled_from([b"", bytes(31), "00" * 32]))
        ),
        "transfer_id": draw(ids),
        "kind": draw(_mostly(st.sampled_from(["award", "bench_award"]), odd_text)),
        "effective_us": draw(ints),
        "actor": draw(st.one_of(st.none(), ids)),
        "idempotency_key": draw(_mostly(st.sampled_from(["k", "sheet-1:row.2"]), odd_text)),
        "postings": draw(postings()),
    }


def _outcome(render: Any) -> bytes | type[Exception]:
    try:
        return render()  # type: ignore[no-any-return]
    except Exception as exc:  # the same exception type, whatever it is
        return type(exc)


def _general(origin: Any, recorded_us: Any, args: dict[str, Any]) -> bytes:
    body = {k: v for k, v in args.items() if k not in ("index", "prev")}
    template = transfer_leaf_template(
        origin=origin,
        phase="single",
        recorded_us=recorded_us,
        reverses=None,
        pending_id=None,
        timeout_us=None,
        **body,
    )
    return template.render(args["index"], args["prev"])


@settings(max_examples=1500)
@given(
    _mostly(st.just(ORIGIN), st.one_of(odd_text, st.just("社区/\u0000"))),
    ints,
    st.lists(leaves(), min_size=1, max_size=4),
)
def test_single_leaves_equal_the_general_template(
    origin: Any, recorded_us: Any, batch: list[dict[str, Any]]
) -> None:
    writer = SingleTransferLeaves(origin, recorded_us)
    for args in batch:  # one writer for several leaves: what it remembers must not change the answer
        expected = _outcome(lambda args=args: _general(origin, recorded_us, args))
        assert _outcome(lambda args=args: writer.render(**args)) == expected


def test_a_batch_of_typical_leaves_takes_the_direct_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: object) -> None:
        raise AssertionError("the general encoder ran")

    writer = SingleTransferLeaves(ORIGIN, 1_770_000_000_000_000)
    expected = []
    prev = bytes(32)
    rows = [
        (
            str(uuid.uuid4()),
            "award",
            None,
            [(ACCOUNTS[0], "points", -i - 1), (ACCOUNTS[i % 4 + 1], "points", i + 1)],
        )
        for i in range(20)
    ]
    for i, (transfer_id, kind, actor, postings) in enumerate(rows):
        args = {
            "transfer_id": transfer_id,
            "kind": kind,
            "effective_us": 1_700_000_000_000_000 + i,
            "actor": actor,
        }
        args.update(
            {"idempotency_key": f"sheet-1:row-{i}", "postings": postings, "index": 40 + i, "prev": prev}
        )
        expected.append(_general(ORIGIN, 1_770_000_000_000_000, args))
        prev = leaf_hash(expected[-1])
    monkeypatch.setattr(leaf, "transfer_leaf_template", refuse)
    prev = bytes(32)
    for i, (transfer_id, kind, actor, postings) in enumerate(rows):
        rendered = writer.render(
            40 + i,
            prev,
            transfer_id=transfer_id,
            kind=kind,
            effective_us=1_700_000_000_000_000 + i,
            actor=actor,
            idempotency_key=f"sheet-1:row-{i}",
            postings=postings,
        )
        assert rendered == expected[i]
        prev = leaf_hash(rendered)
