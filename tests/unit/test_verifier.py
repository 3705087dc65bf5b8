"""The offline verifier (ledger.audit.verifier): a clean export passes, and every tampering audit.md
lists for an export is reported with the exact check, first failing index and exit code."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import pickle
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.audit import verify_state
from ledger.audit.checkpoint import Checkpoint, format_checkpoint_body, sign_checkpoint
from ledger.audit.cosignature import WitnessVerifier, cosign
from ledger.audit.export_format import FORMAT_V1, ExportHeader, ExportWriter, encode_line, write_lines
from ledger.audit.jcs import canonical_json
from ledger.audit.leaf import ZERO_HASH, encode_leaf, leaf_hash
from ledger.audit.merkle import root
from ledger.audit.note import Signer, sign_note
from ledger.audit.verifier import VerifyOptions, verify_export
from ledger.audit.verify_fields import EVENT_TYPES, UNITS
from ledger.audit.verify_leaves import ChunkJob, ChunkResult, check_chunk
from ledger.audit.verify_notes import HistoricKey, TrustedKeys, parse_key_history
from ledger.audit.verify_report import CHECKS, Report
from ledger.domain.units import Unit
from ledger.services.log_events import EVENT_TYPES as SERVICE_EVENT_TYPES
from vledger.audit_cli import audit

ORIGIN = "test.vledger/community/7"
LOG = Signer.from_seed(ORIGIN, bytes(range(32)))
WITNESS = Signer.from_seed("witness.test", bytes(range(1, 33)))
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COSIGNED = int(NOW.timestamp()) - 3600  # cosignatures an hour before "now"
SIZES = (4, 8, 12)  # checkpoints of the standard history
ROOT_DIR = Path(__file__).resolve().parents[2]

ISS_MIN, ISS_PTS, SINK = "acct-iss-min", "acct-iss-pts", "acct-sink"


def tid(n: int) -> str:
    return f"tr-{n:04d}"


class History:
    """A synthetic log: leaves encoded by hand (so that invalid content can be written too)."""

    def __init__(self, origin: str = ORIGIN) -> None:
        self.origin = origin
        self.leaves: list[bytes] = []

    def add(self, body: dict[str, object]) -> int:
        i = len(self.leaves)
        prev = leaf_hash(self.leaves[-1]) if self.leaves else ZERO_HASH
        self.leaves.append(encode_leaf({"v": 1, "origin": self.origin, **body}, i, prev))
        return i

    def transfer(
        self,
        n: int,
        postings: list[tuple[str, str, int]],
        *,
        phase: str = "single",
        kind: str = "award",
        reverses: str | None = None,
        pending: str | None = None,
        timeout: int | None = None,
    ) -> int:
        return self.add(
            {
                "type": "transfer", "id": tid(n), "kind": kind, "phase": phase,
                "effective_us": 1_767_225_600_000_000 + n, "recorded_us": 1_767_225_600_000_000 + n,
                "actor": "u-1", "idempotency_key": f"k-{n}", "postings": [list(p) for p in postings],
                "reverses": reverses, "pending_id": pending, "timeout_us": timeout,
            }
        )  # fmt: skip

    def rechain(self, start: int = 0) -> None:
        """Re-render every leaf from ``start`` with consecutive indices and correct prev links."""
        for i in range(start, len(self.leaves)):
            value = json.loads(self.leaves[i])
            value["index"] = i
            value["prev"] = (leaf_hash(self.leaves[i - 1]) if i else ZERO_HASH).hex()
            self.leaves[i] = canonical_json(value)

    def root(self, size: int) -> bytes:
        return root([leaf_hash(x) for x in self.leaves[:size]])

    def balances(self) -> dict[tuple[str, str], int]:
        sums: dict[tuple[str, str], int] = {}
        for leaf in self.leaves:
            value = json.loads(leaf)
            if value.get("type") == "transfer" and value["phase"] in ("single", "post"):
                for account, unit, amount in value["postings"]:
                    sums[(account, unit)] = sums.get((account, unit), 0) + amount
        return sums


def standard() -> History:
    """Twelve leaves: awards, a payment, a pending posted and one voided, a reversal, an event, and
    a transfer whose kind is not ASCII (checked on the general path)."""
    h = History()
    minutes = [(ISS_MIN, "service_minutes", -60), ("m1", "service_minutes", 60)]
    h.transfer(1, [*minutes, (ISS_PTS, "points", -20), ("m1p", "points", 20)])
    h.transfer(2, [(ISS_PTS, "points", -20), ("m2p", "points", 20)])
    h.transfer(3, [("m1p", "points", -5), ("m2p", "points", 5)], kind="payment")
    h.transfer(4, [("m2p", "points", -3), (SINK, "points", 3)], phase="pending", kind="hold", timeout=9)
    h.transfer(5, [("m2p", "points", -3), (SINK, "points", 3)], phase="post", kind="redeem", pending=tid(4))
    h.transfer(6, [(ISS_PTS, "points", -7), ("m3p", "points", 7)])
    h.add({"type": "rule_set", "version": 2})
    h.transfer(7, [("m2p", "points", -20), (ISS_PTS, "points", 20)], kind="reversal", reverses=tid(2))
    h.transfer(8, [("m3p", "points", -2), (SINK, "points", 2)], phase="pending", kind="hold", timeout=9)
    h.transfer(9, [("m3p", "points", -2), (SINK, "points", 2)], phase="void", kind="cancel", pending=tid(8))
    h.transfer(10, [("m3p", "points", -1), ("m1p", "points", 1)], kind="payment")
    h.transfer(11, [(ISS_PTS, "points", -4), ("m1p", "points", 4)], kind="奖励")
    return h


def note(
    h: History, size: int, *, signer: Signer = LOG, cosigned: int | None = COSIGNED, origin: str = ORIGIN
) -> bytes:
    cp = Checkpoint(origin, size, h.root(size))
    signed = sign_checkpoint(cp, signer)
    if cosigned is None:
        return signed
    return signed + cosign(format_checkpoint_body(cp), WITNESS, cosigned).encode()


def write(
    path: Path,
    h: History,
    sizes: tuple[int, ...] = SIZES,
    *,
    notes: list[bytes] | None = None,
    balances: dict[tuple[str, str], int] | None = None,
    cosigned: int | None = COSIGNED,
) -> list[bytes]:
    """Write an export with ExportWriter; returns its lines (without newlines) for tampering."""

    def emit(w: ExportWriter) -> None:
        for n in notes if notes is not None else [note(h, s, cosigned=cosigned) for s in sizes]:
            w.checkpoint(n)
        for i, leaf in enumerate(h.leaves):
            w.leaf(i, leaf)
        for (account, unit), posted in sorted((h.balances() if balances is None else balances).items()):
            w.balance(account, unit, posted)

    write_lines(path, emit, ExportHeader(h.origin, 7, len(h.leaves), NOW))
    return path.read_bytes().split(b"\n")[:-1]


def save(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def leaf_line(index: int, leaf: bytes) -> bytes:
    return b'{"index":%d,"leaf":%s}' % (index, leaf)


def v1_line(index: int, leaf: bytes) -> bytes:
    """A leaf line of the first format (vledger-log-export/1): the leaf as base64."""
    return b'{"index":%d,"leaf":"%s"}' % (index, base64.b64encode(leaf))


def _keys() -> TrustedKeys:
    return TrustedKeys((LOG.verifier(),), (), (WitnessVerifier.of(WITNESS),))


def check(
    path: Path,
    *,
    quorum: int = 0,
    witnesses: tuple[Signer, ...] = (WITNESS,),
    history: tuple[HistoricKey, ...] = (),
    log_key: Signer = LOG,
    **options: object,
) -> Report:
    keys = TrustedKeys((log_key.verifier(),), history, tuple(WitnessVerifier.of(w) for w in witnesses))
    options.setdefault("now", NOW)
    return verify_export(path, VerifyOptions(keys, quorum=quorum, jobs=1, **options))  # type: ignore[arg-type]


def check_chunked(path: Path) -> Report:
    """check() with the default chunks and with a chunk per leaf or two, so that references and
    repeated ids cross chunk boundaries: both must give the same report."""
    whole, small = check(path), check(path, chunk_bytes=300)
    assert small.failures == whole.failures
    return whole


def found(report: Report) -> dict[str, int | None]:
    """Each failing check with its first failing index."""
    return {f.check: f.index for f in report.failures.values()}


@pytest.fixture
def export(tmp_path: Path) -> tuple[Path, History, list[bytes]]:
    h = standard()
    path = tmp_path / "log.jsonl"
    return path, h, write(path, h)


LEAF0 = 1 + len(SIZES)  # line number of leaf 0 in the standard export


# --------------------------------------------------------------------------------------- clean


def test_clean_export_verifies(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, _ = export
    report = check(path, quorum=1, max_age=timedelta(hours=2))
    assert report.failures == {}
    data = report.as_json()
    assert (data["ok"], data["exit_code"], data["origin"], data["size"]) == (True, 0, ORIGIN, 12)
    assert data["checked"] == {
        "balances": 7, "checkpoints": 3, "checkpoints_signed": 3, "checkpoints_verified": 3, "events": 1,
        "leaves": 12, "postings": 24, "roots_checked": 3, "transfers": 11,
    }  # fmt: skip
    assert [c["root_matches"] for c in data["checkpoints"]] == [True, True, True]
    assert data["checkpoints"][2]["cosignatures"] == 1
    assert data["checkpoints"][2]["key"] == f"{ORIGIN}+{LOG.key_id:08x}"


def test_gzip_export_verifies(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl.gz"
    write(path, standard())
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert check(path).failures == {}


def test_small_chunks_give_the_same_roots(export: tuple[Path, History, list[bytes]]) -> None:
    path, _, _ = export
    report = check(path, chunk_bytes=300)  # a chunk per leaf or two: every chunk boundary is exercised
    assert report.failures == {}
    assert report.checked["roots_checked"] == 3


@pytest.mark.parametrize("nearby", [0, 1, 4096])
@pytest.mark.parametrize("target", ["tr-0001", "tr-0004", "tr-0010", "tr-9999"])
def test_references_across_chunks_resolve_near_or_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nearby: int, target: str
) -> None:
    """A reference whose target is in the chunk just before (found near its end) or further back
    (searched for) reports the same, however small the look-back window."""
    h = standard()
    h.transfer(12, [("m1p", "points", -1), (ISS_PTS, "points", 1)], kind="reversal", reverses=target)
    path = tmp_path / "log.jsonl"
    write(path, h)
    whole = check(path)
    monkeypatch.setattr(verify_state, "_NEARBY", nearby)
    assert check(path, chunk_bytes=300).failures == whole.failures
    # tr-0004 is a pending transfer and tr-9999 is not in the log: neither can be reversed.
    assert ("reversal_target" in whole.failures) == (target in ("tr-0004", "tr-9999"))


def test_worker_processes_give_the_same_report(tmp_path: Path) -> None:
    h = standard()
    for n in range(100, 400):  # enough leaves for several chunks at odd boundaries
        h.transfer(n, [(ISS_PTS, "points", -1), (f"m{n}", "points", 1)])
    path = tmp_path / "log.jsonl"
    write(path, h, (4, 8, 12, 100, 311, len(h.leaves)))
    keys = TrustedKeys((LOG.verifier(),))
    parallel = verify_export(path, VerifyOptions(keys, jobs=2, chunk_bytes=4096, now=NOW))
    serial = verify_export(path, VerifyOptions(keys, jobs=1, now=NOW))
    assert parallel.failures == serial.failures == {}
    assert parallel.checked == serial.checked
    # tampered: a leaf's line index is off, so the worker's guessed start is wrong and is redone
    lines = path.read_bytes().split(b"\n")
    del lines[1 + 6 + 50]
    save(path, lines[:-1])
    parallel = verify_export(path, VerifyOptions(keys, jobs=2, chunk_bytes=4096, now=NOW))
    serial = verify_export(path, VerifyOptions(keys, jobs=1, now=NOW))
    assert found(parallel) == found(serial) == {
        "index_gap": 50, "prev_link": 50, "root_mismatch": 100, "checkpoint_beyond_export": 312,
        "leaf_count": 311, "balance_mismatch": None, "end_line": None, "unsigned_leaves": 12,
    }  # fmt: skip


def test_worker_processes_read_gzip_exports_too(tmp_path: Path) -> None:
    h = standard()
    for n in range(100, 300):
        h.transfer(n, [(ISS_PTS, "points", -1), (f"m{n}", "points", 1)])
    path = tmp_path / "log.jsonl.gz"
    write(path, h, (4, 8, 12, 150, len(h.leaves)))
    report = verify_export(path, VerifyOptions(TrustedKeys((LOG.verifier(),)), jobs=2, chunk_bytes=2048))
    assert report.failures == {}
    assert report.checked["leaves"] == 212


def test_key_history_and_pin_files_are_strict(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retired_at_size"):
        parse_key_history(json.dumps({"keys": [{"vkey": LOG.verifier().vkey(), "retired_at_size": -1}]}))
    parsed = parse_key_history(json.dumps({"keys": [{"vkey": LOG.verifier().vkey(), "retired_at_size": 9}]}))
    assert parsed == (HistoricKey(LOG.verifier(), 9),)
    path, pin = tmp_path / "log.jsonl", tmp_path / "pin.json"
    write(path, standard())
    pin.write_text('{"origin": "x", "size": 1}')
    report = check(path, pin_path=pin)
    assert found(report) == {"pin_file": None}
    assert report.exit_code == 2
    pin.write_text(
        json.dumps({"origin": "other/log", "size": 1, "root": base64.b64encode(bytes(32)).decode()})
    )
    assert found(check(path, pin_path=pin)) == {"pin_file": None}


# ------------------------------------------------------------------- the fast and general paths


def _chunk(leaves: list[bytes], *, slow: bool) -> tuple[object, dict[bytes, int]]:
    data = b"\n".join(leaf_line(i, x) for i, x in enumerate(leaves))
    sums: dict[bytes, int] = {}
    res = check_chunk(ChunkJob(data, 0, ORIGIN, (3, 7), force_slow=slow), sums)
    return dataclasses.replace(res), sums


def _mutations(leaf: bytes, rng: random.Random) -> list[bytes]:
    text = leaf.decode()
    out = [
        text.replace('"phase":"single"', '"phase":"post"'),
        text.replace('"reverses":null', '"reverses":"tr-0001"'),
        text.replace('"timeout_us":null', '"timeout_us":9007199254740992'),
        text.replace('"recorded_us":1', '"recorded_us":9'),
        text.replace('"points"', '"pointz"'),
        text.replace('"v":1', '"v":2'),
        text.replace('"origin":"', '"origin":"x'),
        text.replace(",-", ",-0"),
        text.replace('"type":"transfer"', '"type":"board"'),
        text.replace('"actor":"u-1"', '"actor":"\\u0041"'),
        text.replace('"kind":"', '"kind":"\u00e9'),
        text.replace('"kind":"', '"kind":"e\u0301'),
    ]
    # The second posting of a pair moved to another known unit: the amounts still cancel, the units
    # do not (service_minutes and coin_minutes end in the same bytes).
    for unit, other in itertools.permutations(sorted(u.value for u in Unit), 2):
        at = text.rfind(f'"{unit}"')
        if at >= 0:
            out.append(text[:at] + f'"{other}"' + text[at + len(unit) + 2 :])
    for _ in range(10):
        i = rng.randrange(len(text))
        out.append(text[:i] + rng.choice('0a",[]{} -\\') + text[i + 1 :])
    return [t.encode() for t in out]


def test_fast_path_agrees_with_the_general_path() -> None:
    h = standard()
    assert _chunk(h.leaves, slow=False) == _chunk(h.leaves, slow=True)
    rng = random.Random(7)
    for i in (0, 4, 7, 11):
        for mutated in _mutations(h.leaves[i], rng):
            leaves = [*h.leaves[:i], mutated, *h.leaves[i + 1 :]]
            assert _chunk(leaves, slow=False) == _chunk(leaves, slow=True), mutated


def test_a_pair_in_two_units_whose_names_end_alike_is_unbalanced() -> None:
    h = History()
    h.transfer(1, [(ISS_MIN, "service_minutes", -30), ("m1", "service_minutes", 30)])
    leaf = h.leaves[0].replace(b'"service_minutes",30]', b'"coin_minutes",30]')
    for slow in (False, True):
        res, _ = _chunk([leaf], slow=slow)
        assert isinstance(res, ChunkResult)
        assert res.failures["zero_sum"][2] == {"service_minutes": -30, "coin_minutes": 30}


@pytest.mark.parametrize("ids", [[], [b"tr-1", b"tr-2"], [b"tr-1", b"a\nnewline"], [b""]])
def test_chunk_results_survive_the_trip_from_a_worker(ids: list[bytes]) -> None:
    res = ChunkResult(7, 3, count=len(ids), ids=ids, id_positions=list(range(7, 7 + len(ids))))
    res.fail("zero_sum", 8, {"points": 0}, {"points": 1})
    back = pickle.loads(pickle.dumps(res))  # noqa: S301 - our own bytes, as between worker and main
    assert back == res
    assert back.ids == ids


def test_constants_match_the_service() -> None:
    assert frozenset(SERVICE_EVENT_TYPES) == EVENT_TYPES
    assert {u.value.encode() for u in Unit} == UNITS


def test_docs_list_every_check_with_its_exit_code() -> None:
    text = (ROOT_DIR / "docs" / "audit.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([0-3]) \|$", text, re.MULTILINE))
    assert {name: int(code) for name, code in rows.items()} == {n: c for n, (c, _) in CHECKS.items()}


# ------------------------------------------------------------------------- tampering with leaves
# Each test edits a real export file (or builds the tampered log a server would have to serve) and
# checks the whole report: every failing check with its first failing index, and the exit code.


def _edit_leaf(lines: list[bytes], i: int, leaf: bytes) -> None:
    lines[LEAF0 + i] = leaf_line(i, leaf)


def test_edited_decoded_field_is_a_re_encoding_mismatch(export: tuple[Path, History, list[bytes]]) -> None:
    path, h, lines = export
    value = json.loads(h.leaves[5])
    value["kind"] = "bonus"
    _edit_leaf(lines, 5, json.dumps(value).encode())  # the usual JSON writer: spaces, unsorted keys
    save(path, lines)
    report = check(path)
    assert found(report) == {"leaf_canonical": 5, "prev_link": 6, "root_mismatch": 8, "unsigned_leaves": 4}
    assert report.exit_code == 1
    assert report.failures["root_mismatch"].count == 2  # the checkpoints of sizes 8 and 12


def test_edited_bytes_give_a_prev_mismatch_and_a_root_mismatch(
    export: tuple[Path, History, list[bytes]],
) -> None:
    path, h, lines = export
    _edit_leaf(lines, 5, h.leaves[5].replace(b'"kind":"award"', b'"kind":"bonus"'))  # still canonical
    save(path, lines)
    report = check(path)
    assert found(report) == {"prev_link": 6, "root_mismatch": 8, "unsigned_leaves": 4}
    assert report.exit_code == 1
    first = report.failures["prev_link"]
    assert (first.expected, first.found) == (
        leaf_hash(lines_leaf(lines, 5)).hex(),
        leaf_hash(h.leaves[5]).hex(),
    )
    mismatch = report.failures["root_mismatch"]
    assert mismatch.expected == base64.b64encode(h.root(8)).decode()


def as_v1(lines: list[bytes]) -> None:
    """Rewrite an export's lines in place into the first format (header and base64 leaf lines)."""
    lines[0] = lines[0].replace(b"vledger-log-export/2", b"vledger-log-export/1")
    for i in range(LEAF0, len(lines)):
        if lines[i].startswith(b'{"index":'):
            lines[i] = v1_line(i - LEAF0, lines_leaf(lines, i - LEAF0))


def lines_leaf(lines: list[bytes], i: int) -> bytes:
    line = lines[LEAF0 + i]
    return line[line.index(b',"leaf":') + 8 : -1]


def test_rechained_history_without_the_key(tmp_path: Path) -> None:
    h = standard()
    path = tmp_path / "log.jsonl"
    old_notes = [note(h, s) for s in SIZES]
    h.leaves[5] = h.leaves[5].replace(b"m3p", b"m9p")
    h.rechain(5)
    write(path, h, notes=old_notes)  # the chain is whole again, the signed roots are not
    report = check(path)
    assert found(report) == {"root_mismatch": 8, "unsigned_leaves": 4}
    assert report.exit_code == 1
    # ... and with the roots recomputed too, the old signatures no longer verify
    genuine = standard()
    forged = [
        n.replace(base64.b64encode(genuine.root(s)), base64.b64encode(h.root(s)))
        for n, s in zip(old_notes, SIZES, strict=True)
    ]
    write(path, h, notes=forged)
    report = check(path)
    assert found(report) == {"checkpoint_signature": 8, "unsigned_leaves": 4}
    assert report.failures["checkpoint_signature"].count == 2
    assert "invalid signature" in report.failures["checkpoint_signature"].detail


def test_history_resigned_by_another_key(tmp_path: Path) -> None:
    h = standard()
    h.leaves[5] = h.leaves[5].replace(b"m3p", b"m9p")
    h.rechain(5)
    impostor = Signer.from_seed(ORIGIN, bytes(32))  # the log's name, not its key
    path = tmp_path / "log.jsonl"
    write(path, h, notes=[note(h, s, signer=impostor) for s in SIZES])
    report = check(path)
    assert found(report) == {"checkpoint_signature": 4, "unsigned_leaves": 0}
    assert report.exit_code == 1
    assert "a trusted key name with another key ID" in report.failures["checkpoint_signature"].detail


def test_history_resigned_with_the_real_key_breaks_the_pin_and_equivocates(tmp_path: Path) -> None:
    path, pin = tmp_path / "log.jsonl", tmp_path / "pin.json"
    h = standard()
    genuine = [note(h, s) for s in SIZES]
    write(path, h, notes=genuine)
    assert check(path, pin_path=pin, write_pin=True).failures == {}
    assert json.loads(pin.read_text())["size"] == 12
    rewritten = standard()
    rewritten.leaves[5] = rewritten.leaves[5].replace(b"m3p", b"m9p")
    rewritten.rechain(5)
    resigned = [note(rewritten, s) for s in SIZES]
    write(path, rewritten, notes=resigned)
    assert check(path).failures == {}  # without history, a re-signed rewrite looks fine ...
    report = check(path, pin_path=pin)  # ... but not against what this auditor saw before
    assert found(report) == {"pin_mismatch": 12}
    assert report.exit_code == 1
    # two different signed notes for one size: equivocation, whichever leaves come with them
    write(path, rewritten, notes=[*resigned[:2], genuine[2], resigned[2]])
    report = check(path)
    assert found(report) == {"equivocation": 12, "root_mismatch": 12}
    assert report.exit_code == 1


def test_pinned_state_rollback(tmp_path: Path) -> None:
    path, pin = tmp_path / "log.jsonl", tmp_path / "pin.json"
    h = standard()
    write(path, h)
    check(path, pin_path=pin, write_pin=True)
    older = History()
    older.leaves = h.leaves[:8]
    write(path, older, (4, 8))  # an older, consistent view of the log, genuinely signed
    assert check(path).failures == {}
    report = check(path, pin_path=pin)
    assert found(report) == {"rollback": 8}
    assert (report.failures["rollback"].expected, report.failures["rollback"].found) == (12, 8)
    assert report.exit_code == 1


def test_truncated_tail_with_an_older_checkpoint_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    older = standard()
    older.leaves = older.leaves[:8]
    days_ago = COSIGNED - 3 * 86_400
    write(path, older, (4, 8), cosigned=days_ago)
    report = check(path, max_age=timedelta(hours=24))
    assert found(report) == {"stale": 8}
    assert report.exit_code == 3
    assert report.failures["stale"].found == 73.0  # hours since the newest trusted cosignature


def test_truncated_tail_keeping_the_newer_checkpoint(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, lines = export
    header = json.loads(lines[0])
    header["size"] = 8
    lines[0] = encode_line(header)
    del lines[LEAF0 + 8 : LEAF0 + 12]
    save(path, lines)
    report = check(path)
    assert found(report) == {"checkpoint_beyond_export": 12, "balance_mismatch": None, "end_line": None}
    assert report.exit_code == 1


def test_deleted_middle_leaf_is_an_index_gap(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, lines = export
    del lines[LEAF0 + 5]
    save(path, lines)
    report = check(path)
    assert found(report) == {
        "index_gap": 5, "prev_link": 5, "root_mismatch": 8, "checkpoint_beyond_export": 12,
        "leaf_count": 11, "balance_mismatch": None, "end_line": None, "unsigned_leaves": 4,
    }  # fmt: skip
    gap = report.failures["index_gap"]
    assert (gap.expected, gap.found) == (5, 6)
    assert report.exit_code == 1


def test_deleted_and_renumbered_leaf_is_a_root_mismatch(tmp_path: Path) -> None:
    h = standard()
    notes = [note(h, s) for s in SIZES]
    del h.leaves[5]
    h.rechain(5)  # indices and links redone: only the signed roots tell
    path = tmp_path / "log.jsonl"
    write(path, h, notes=notes)
    report = check(path)
    assert found(report) == {"root_mismatch": 8, "checkpoint_beyond_export": 12, "unsigned_leaves": 4}
    assert report.exit_code == 1
    # renumbering only the lines (the leaves still say where they were) is a position mismatch
    path2 = tmp_path / "renumbered.jsonl"
    lines = write(path2, standard())
    del lines[LEAF0 + 5]
    for i in range(5, 11):
        lines[LEAF0 + i] = leaf_line(i, lines_leaf(lines, i))
    save(path2, lines)
    assert found(check(path2)) == {
        "leaf_position": 5, "prev_link": 5, "root_mismatch": 8, "checkpoint_beyond_export": 12,
        "leaf_count": 11, "balance_mismatch": None, "end_line": None, "unsigned_leaves": 4,
    }  # fmt: skip


def test_duplicated_leaf(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, lines = export
    lines.insert(LEAF0 + 6, lines[LEAF0 + 5])
    save(path, lines)
    report = check_chunked(path)
    assert found(report) == {
        "leaf_position": 6, "prev_link": 6, "duplicate_id": 6, "root_mismatch": 8, "leaf_count": 13,
        "balance_mismatch": None, "end_line": None, "unsigned_leaves": 4,
    }  # fmt: skip
    assert report.exit_code == 1


def test_swapped_leaves(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, lines = export
    lines[LEAF0 + 5], lines[LEAF0 + 6] = lines[LEAF0 + 6], lines[LEAF0 + 5]
    save(path, lines)
    report = check(path)
    assert found(report) == {
        "index_gap": 5, "leaf_position": 6, "prev_link": 5, "root_mismatch": 8, "unsigned_leaves": 4,
    }  # fmt: skip
    assert report.exit_code == 1


def test_inserted_leaf(export: tuple[Path, History, list[bytes]]) -> None:
    path, h, lines = export
    extra = History()
    extra.leaves = h.leaves[:5]
    extra.transfer(99, [(ISS_PTS, "points", -1), ("m4p", "points", 1)])
    lines.insert(LEAF0 + 5, leaf_line(5, extra.leaves[5]))  # a well-formed leaf 5, linked to leaf 4
    save(path, lines)
    report = check(path)
    assert found(report) == {
        "leaf_position": 6, "prev_link": 6, "root_mismatch": 8, "leaf_count": 13,
        "balance_mismatch": None, "end_line": None, "unsigned_leaves": 4,
    }  # fmt: skip
    assert report.exit_code == 1


def test_leaves_after_the_last_checkpoint_are_unsigned(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write(path, standard(), (4, 8))
    report = check(path)
    assert found(report) == {"unsigned_leaves": 8}
    failure = report.failures["unsigned_leaves"]
    assert (failure.expected, failure.found) == (12, 8)
    assert report.exit_code == 3


def test_unbalanced_postings(tmp_path: Path) -> None:
    h = standard()
    h.transfer(12, [(ISS_PTS, "points", -5), ("m1p", "points", 6)], kind="award")
    path = tmp_path / "log.jsonl"
    write(path, h, (*SIZES, 13))
    report = check(path)
    assert found(report) == {"zero_sum": 12}
    assert (report.failures["zero_sum"].expected, report.failures["zero_sum"].found) == (
        {"points": 0},
        {"points": 1},
    )
    assert report.exit_code == 1


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (tid(77), {"reversal_target": 12}),  # no such transfer
        (tid(2), {"double_reversal": 12}),  # leaf 7 already reversed it
        (tid(4), {"reversal_target": 12}),  # a pending transfer cannot be reversed
    ],
)
def test_bad_reversals(tmp_path: Path, target: str, expected: dict[str, int]) -> None:
    h = standard()
    h.transfer(12, [("m2p", "points", -20), (ISS_PTS, "points", 20)], kind="reversal", reverses=target)
    path = tmp_path / "log.jsonl"
    write(path, h, (*SIZES, 13))
    report = check_chunked(path)
    assert found(report) == expected
    assert report.exit_code == 1


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (tid(77), {"pending_target": 12}),
        (tid(1), {"pending_target": 12}),
        (tid(4), {"double_resolution": 12}),
    ],
)
def test_bad_pending_resolutions(tmp_path: Path, target: str, expected: dict[str, int]) -> None:
    h = standard()
    h.transfer(12, [("m2p", "points", -3), (SINK, "points", 3)], phase="void", kind="cancel", pending=target)
    path = tmp_path / "log.jsonl"
    write(path, h, (*SIZES, 13))
    report = check_chunked(path)
    assert found(report) == expected
    assert report.exit_code == 1


def test_reversal_of_a_later_transfer(tmp_path: Path) -> None:
    h = standard()
    h.transfer(12, [(ISS_PTS, "points", -1), ("m1p", "points", 1)], kind="reversal", reverses=tid(13))
    h.transfer(13, [("m1p", "points", -1), (ISS_PTS, "points", 1)])
    path = tmp_path / "log.jsonl"
    write(path, h, (*SIZES, 14))
    report = check_chunked(path)
    assert found(report) == {"reversal_target": 12}
    assert report.failures["reversal_target"].found == 13


def test_unknown_type_bad_fields_and_other_origin(tmp_path: Path) -> None:
    h = standard()
    h.add({"type": "gossip"})
    h.transfer(13, [(ISS_PTS, "points", -1), ("m1p", "points", 1)], phase="single", pending=tid(4))
    elsewhere = {"v": 1, "origin": "test.vledger/community/8", "type": "board"}
    h.leaves.append(encode_leaf(elsewhere, 14, leaf_hash(h.leaves[-1])))
    path = tmp_path / "log.jsonl"
    write(path, h, (*SIZES, 15))
    report = check(path)
    assert found(report) == {"leaf_type": 12, "leaf_fields": 13, "leaf_origin": 14}
    assert (
        report.failures["leaf_fields"].detail == '"pending_id" must be null unless the phase is post or void'
    )
    assert report.exit_code == 1


# ------------------------------------------------------------------- tampering with checkpoints


def _replace_note(lines: list[bytes], k: int, new: bytes | str) -> None:
    text = new.decode() if isinstance(new, bytes) else new
    lines[1 + k] = encode_line({"checkpoint": text})


def _note_text(lines: list[bytes], k: int) -> str:
    return str(json.loads(lines[1 + k])["checkpoint"])


def _flip_signature_bit(text: str) -> str:
    body, sep, sigs = text.partition("\n\n")
    first, _, rest = sigs.partition("\n")
    prefix, b64 = first.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 0x01
    return body + sep + prefix + " " + base64.b64encode(bytes(raw)).decode() + "\n" + rest


def _wrong_key_id(text: str) -> str:
    body, sep, sigs = text.partition("\n\n")
    first, _, rest = sigs.partition("\n")
    prefix, b64 = first.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 0xFF
    return body + sep + prefix + " " + base64.b64encode(bytes(raw)).decode() + "\n" + rest


def _signed_by_stranger(text: str) -> str:
    body = text.partition("\n\n")[0] + "\n"
    return sign_note(body, [Signer.from_seed("someone.else", bytes(32))]).decode()


@pytest.mark.parametrize(
    ("tamper", "check_name", "reason"),
    [
        (_flip_signature_bit, "checkpoint_signature", "invalid signature"),
        (lambda t: t.replace("\n8\n", "\n9\n", 1), "checkpoint_signature", "invalid signature"),
        (
            lambda t: t.replace(t.split("\n")[2], base64.b64encode(bytes(32)).decode(), 1),
            "checkpoint_signature",
            "invalid signature",
        ),
        (_wrong_key_id, "checkpoint_signature", "a trusted key name with another key ID"),
        (_signed_by_stranger, "checkpoint_signature", "no trusted signature"),
        (
            lambda t: note(
                standard(),
                8,
                signer=Signer.from_seed("test.vledger/community/8", bytes(32)),
                origin="test.vledger/community/8",
            ).decode(),
            "checkpoint_origin",
            "test.vledger/community/8",
        ),
    ],
    ids=["flipped-bit", "edited-size", "edited-root", "wrong-key-id", "unknown-key", "other-community"],
)
def test_tampered_checkpoints_are_rejected_with_the_reason(
    export: tuple[Path, History, list[bytes]], tamper: Callable[[str], str], check_name: str, reason: str
) -> None:
    path, _h, lines = export
    _replace_note(lines, 1, tamper(_note_text(lines, 1)))  # the middle checkpoint (size 8)
    save(path, lines)
    report = check(path)
    assert list(found(report)) == [check_name]
    assert reason in report.failures[check_name].detail
    assert report.exit_code == 1
    assert report.checkpoints[1]["signature"] != "valid"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda t: t.replace("\u2014 ", "- "), "ASCII hyphen-minus"),
        (lambda t: t.replace("\n", "\r\n"), "carriage return"),
        (lambda t: t.replace("\n\n", "\n"), "no blank line"),
        (lambda t: t.replace("\n8\n", "\n08\n", 1), "leading zero"),
        (lambda t: t[: t.rindex(" ") + 1] + "not*base64\n", "base64"),
        (lambda t: t.replace(ORIGIN, ORIGIN + "\x01", 1), "control character"),
    ],
    ids=["ascii-dash", "crlf", "no-blank-line", "leading-zero", "bad-base64", "control-char"],
)
def test_malformed_notes_are_parse_errors(
    export: tuple[Path, History, list[bytes]], tamper: Callable[[str], str], reason: str
) -> None:
    path, _h, lines = export
    _replace_note(lines, 1, tamper(_note_text(lines, 1)))
    save(path, lines)
    report = check(path)
    assert found(report) == {"checkpoint_syntax": None}
    assert reason in report.failures["checkpoint_syntax"].detail
    assert report.exit_code == 2


def test_witness_quorum(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write(path, standard(), cosigned=None)
    report = check(path, quorum=1)
    assert found(report) == {"witness_quorum": 12}
    assert (report.failures["witness_quorum"].expected, report.failures["witness_quorum"].found) == (1, 0)
    assert report.exit_code == 3
    write(path, standard())  # cosigned, but by a witness the auditor does not trust
    other = Signer.from_seed("witness.other", bytes(range(2, 34)))
    assert found(check(path, quorum=1, witnesses=(other,))) == {"witness_quorum": 12}
    assert check(path, quorum=1).failures == {}


def test_forged_cosignature(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, lines = export
    text = _note_text(lines, 2)
    head, cosig = text.rstrip("\n").rsplit("\n", 1)
    prefix, b64 = cosig.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01
    _replace_note(lines, 2, f"{head}\n{prefix} {base64.b64encode(bytes(raw)).decode()}\n")
    save(path, lines)
    report = check(path, quorum=1)
    assert found(report) == {"cosignature_invalid": 12, "witness_quorum": 12}
    assert report.exit_code == 1


def test_freshness_falls_back_to_the_export_time(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write(path, standard(), cosigned=None)  # exported at NOW, checked at NOW + 30 h
    report = check(path, max_age=timedelta(hours=24), now=NOW + timedelta(hours=30))
    assert found(report) == {"stale": 12}
    assert "export time" in report.failures["stale"].detail
    assert check(path, max_age=timedelta(hours=24)).failures == {}


def test_key_history(tmp_path: Path) -> None:
    old = Signer.from_seed(ORIGIN, bytes(range(5, 37)))
    h = standard()
    path = tmp_path / "log.jsonl"
    write(path, h, notes=[note(h, 4, signer=old), note(h, 8, signer=old), note(h, 12)])
    assert found(check(path)) == {"checkpoint_signature": 4}  # the old key is not trusted at all
    retired_at_8 = (HistoricKey(old.verifier(), 8),)
    assert check(path, history=retired_at_8).failures == {}
    retired_at_4 = (HistoricKey(old.verifier(), 4),)
    report = check(path, history=retired_at_4)
    assert found(report) == {"retired_key": 8}
    assert report.exit_code == 1


# --------------------------------------------------------------------- balances and the file


def test_reported_balance_differs(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, lines = export
    first_balance = LEAF0 + 12
    value = json.loads(lines[first_balance])
    value["balance"]["posted"] += 5
    lines[first_balance] = encode_line(value)
    save(path, lines)
    report = check(path)
    assert found(report) == {"balance_mismatch": None}
    failure = report.failures["balance_mismatch"]
    assert failure.found == failure.expected + 5
    assert value["balance"]["account"] in failure.detail
    assert report.exit_code == 1


def test_missing_and_duplicate_balance_lines(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, lines = export
    lines[LEAF0 + 13] = lines[LEAF0 + 12]
    save(path, lines)
    report = check(path)
    assert found(report) == {"balance_duplicate": None, "balance_mismatch": None}
    assert "has postings but no balance" in report.failures["balance_mismatch"].detail
    assert report.exit_code == 1


@pytest.mark.parametrize(
    ("edit", "expected", "code"),
    [
        (lambda lines: lines.__setitem__(0, b'{"format":"other/1"}'), {"header": None}, 2),
        (
            lambda lines: (as_v1(lines), lines.__setitem__(LEAF0 + 3, b'{"index":3,"leaf":"!!"}')),
            {"line_syntax": 3},
            2,
        ),
        (
            lambda lines: (as_v1(lines), lines.__setitem__(LEAF0 + 3, b'{"index":03,"leaf":"QQ=="}')),
            {"line_syntax": 3},
            2,
        ),
        (
            lambda lines: (as_v1(lines), lines.__setitem__(LEAF0 + 3, b'{"index":3,"leaf":"QR=="}')),
            {"line_syntax": 3},
            2,
        ),
        (
            lambda lines: lines.__setitem__(LEAF0 + 3, lines[LEAF0 + 3].replace(b":3,", b":03,", 1)),
            {"line_syntax": 3},
            2,
        ),
        (
            lambda lines: lines.__setitem__(
                LEAF0 + 3, lines[LEAF0 + 3].replace(b',"leaf":', b',"leaf" :', 1)
            ),
            {"line_syntax": 3},
            2,
        ),
        (lambda lines: lines.__setitem__(LEAF0 + 3, lines[LEAF0 + 3][:-2]), {"line_syntax": 3}, 2),
        (lambda lines: lines.pop(), {"end_line": None}, 2),
        (lambda lines: lines.append(b"{}"), {"line_syntax": None}, 2),
        (
            lambda lines: lines.__setitem__(LEAF0 + 12, lines[LEAF0 + 12].replace(b":", b": ", 1)),
            {"line_syntax": None, "balance_mismatch": None},
            1,
        ),
    ],
    ids=[
        "header",
        "v1-leaf-base64",
        "v1-leaf-index",
        "v1-base64-padding-bits",
        "leaf-index",
        "leaf-separator",
        "leaf-unclosed",
        "no-end-line",
        "after-end",
        "spaced-json",
    ],
)
def test_malformed_files(
    export: tuple[Path, History, list[bytes]],
    edit: Callable[[list[bytes]], object],
    expected: dict[str, int | None],
    code: int,
) -> None:
    path, _h, lines = export
    edit(lines)
    save(path, lines)
    report = check(path)
    assert found(report) == expected
    assert report.exit_code == code


def test_first_format_still_verifies(export: tuple[Path, History, list[bytes]]) -> None:
    path, h, lines = export
    as_v1(lines)
    save(path, lines)
    assert check(path).ok
    written = write(path.with_name("v1.jsonl"), h)  # the writer still writes /1 if asked
    assert written[0].startswith(b'{"exported_at"')
    v1_path = path.with_name("v1b.jsonl")
    write_lines(v1_path, lambda w: [w.leaf(i, x) for i, x in enumerate(h.leaves)],
                ExportHeader(h.origin, 7, len(h.leaves), NOW, FORMAT_V1))  # fmt: skip
    v1_lines = v1_path.read_bytes().split(b"\n")
    assert b'"format":"vledger-log-export/1"' in v1_lines[0]
    assert v1_lines[1] == v1_line(0, h.leaves[0])


@pytest.mark.parametrize(
    ("cut", "expected", "code"),
    [(b"\n", {"line_syntax": 3}, 2), (b"}\n", {"leaf_canonical": 3, "line_syntax": 4}, 1)],
    ids=["newline", "brace-newline"],
)
def test_leaf_with_a_raw_newline(tmp_path: Path, cut: bytes, expected: dict[str, int], code: int) -> None:
    """A leaf holding a raw newline (tampered with in the database) is written verbatim by the
    writer; it cuts its line in two, which the verifier reports as malformed input (line_syntax,
    exit 2). If the first piece happens to end like a line, it is checked as a (non-canonical)
    leaf, which is tampering (exit 1), and the rest of the line is malformed input."""
    h = standard()
    tampered = h.leaves[3][:20] + cut + h.leaves[3][20:]
    path = tmp_path / "log.jsonl"
    lines = write(path, h)
    raw = tmp_path / "raw.jsonl"
    write_lines(raw, lambda w: w.leaf(3, tampered), ExportHeader(h.origin, 7, 1, NOW))
    assert raw.read_bytes().split(b"\n")[1:3] == leaf_line(3, tampered).split(b"\n")
    lines[LEAF0 + 3] = leaf_line(3, tampered)
    save(path, lines)
    for jobs in (1, 2):
        report = verify_export(
            path, VerifyOptions(_keys(), jobs=jobs, now=NOW, chunk_bytes=64 if jobs == 2 else 1 << 20)
        )
        assert {k: v for k, v in found(report).items() if k in expected} == expected
        assert report.exit_code == code


def test_leaf_bytes_that_are_not_json(export: tuple[Path, History, list[bytes]]) -> None:
    """Any bytes without a newline are carried verbatim: a leaf that is not JSON is tampering
    (leaf_canonical, root_mismatch), not a malformed line."""
    path, _h, lines = export
    lines[LEAF0 + 3] = leaf_line(3, b'"!!"}{')
    save(path, lines)
    report = check(path)
    assert "line_syntax" not in found(report)
    assert found(report)["leaf_canonical"] == 3
    assert report.exit_code == 1


def test_truncated_file_and_wrong_key(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, _lines = export
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut in the middle of a leaf line
    report = check(path)
    assert "line_syntax" in found(report)
    assert report.exit_code == 2
    other = Signer.from_seed("test.vledger/community/8", bytes(32))
    path.write_bytes(data)
    report = check(path, log_key=other)
    assert found(report) == {"origin": None}
    assert report.exit_code == 1


# -------------------------------------------------------------------------------------- the CLI


def test_cli_prints_the_report_and_exits_with_its_code(
    export: tuple[Path, History, list[bytes]], tmp_path: Path
) -> None:
    path, _h, _ = export
    pin, out = tmp_path / "pin.json", tmp_path / "report.json"
    witness = WitnessVerifier.of(WITNESS).vkey()
    args = ["verify", str(path), "--log-key", LOG.verifier().vkey(), "--witness-key", witness]
    result = CliRunner().invoke(audit, [*args, "--pin", str(pin), "--write-pin", "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True
    assert json.loads(out.read_text())["exit_code"] == 0
    root_b64 = base64.b64encode(standard().root(12)).decode()
    assert json.loads(pin.read_text()) == {"origin": ORIGIN, "size": 12, "root": root_b64}
    result = CliRunner().invoke(audit, [*args, "--max-age-hours", "0.5"])
    assert result.exit_code == 3
    assert json.loads(result.output)["failures"][0]["check"] == "stale"
    result = CliRunner().invoke(audit, ["verify", str(path), "--log-key", "not-a-key"])
    assert result.exit_code == 2
    assert "日志公钥无效" in result.output


def test_hostile_lines_are_reported_not_raised(export: tuple[Path, History, list[bytes]]) -> None:
    path, _h, lines = export
    lines[1] = b'{"checkpoint":"\\ud800"}'
    lines[LEAF0 + 12] = b'{"balance":{"account":"a","posted":' + b"9" * 5000 + b',"unit":"points"}}'
    save(path, lines)
    report = check(path)
    assert found(report) == {"line_syntax": None, "balance_mismatch": None}
    assert report.exit_code == 1
