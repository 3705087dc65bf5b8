"""The C2SP tlog-witness: add-checkpoint answers, persisted state, the HTTP server, clients and CLI."""

from __future__ import annotations

import hashlib
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.audit import merkle
from ledger.audit.checkpoint import Checkpoint, format_checkpoint_body, sign_checkpoint
from ledger.audit.cosignature import CosignatureError, parse_witness_key, verify_cosignature
from ledger.audit.note import Signer
from ledger.audit.signer import SignerStateError, generate_key_file
from ledger.audit.witness import (
    HttpWitness,
    LocalWitness,
    Witness,
    WitnessConflictError,
    WitnessRejectedError,
    build_request,
    content_type,
    make_server,
    parse_response,
    request_cosignature,
)
from vledger.witness_cli import witness as witness_cli

ORIGIN = "test.vledger/community/9"
NAME = "witness.test/w1"
NOW = 1_760_000_000
LOG_KEY = Signer.from_seed(ORIGIN, bytes(range(32)))
HASHES = [hashlib.sha256(f"leaf{i}".encode()).digest() for i in range(40)]


def _cp(size: int, hashes: list[bytes] = HASHES) -> Checkpoint:
    return Checkpoint(ORIGIN, size, merkle.root(hashes[:size]))


def _body(old: int, size: int, *, signer: Signer = LOG_KEY, hashes: list[bytes] = HASHES) -> bytes:
    proof = merkle.consistency_proof_reference(old, hashes[:size]) if 0 < old < size else []
    return build_request(old, proof, sign_checkpoint(_cp(size, hashes), signer))


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    path = tmp_path / "witness.key"
    generate_key_file(path, NAME)
    return path


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "witness-state.json"


def _witness(key_path: Path, state_path: Path) -> Witness:
    return Witness(NAME, key_path, state_path, {ORIGIN: LOG_KEY.verifier().vkey()}, clock=lambda: NOW)


@pytest.fixture
def w(key_path: Path, state_path: Path) -> Witness:
    return _witness(key_path, state_path)


def _verify(w: Witness, body: bytes, size: int) -> int:
    lines = parse_response(200, body)
    assert len(lines) == 1
    return verify_cosignature(
        lines[0], format_checkpoint_body(_cp(size)), parse_witness_key(w.verifier_key())
    )


def test_valid_checkpoints_are_cosigned_and_the_state_persisted(w: Witness, state_path: Path) -> None:
    status, body = w.add_checkpoint(_body(0, 5))
    assert status == 200 and _verify(w, body, 5) == NOW
    status, body = w.add_checkpoint(_body(5, 17))
    assert status == 200 and _verify(w, body, 17) == NOW
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    state = json.loads(state_path.read_text())
    assert state["logs"][ORIGIN] == {"size": 17, "root": _cp(17).root_hash.hex()}
    # The same head again is cosigned again (fresh timestamp), without a proof.
    assert w.add_checkpoint(_body(17, 17))[0] == 200
    assert w.verifier_key().split("+")[0] == NAME


def test_the_state_survives_a_restart(w: Witness, key_path: Path, state_path: Path) -> None:
    assert w.add_checkpoint(_body(0, 8))[0] == 200
    again = _witness(key_path, state_path)
    assert again.latest(ORIGIN) == (8, _cp(8).root_hash)
    assert again.add_checkpoint(_body(0, 9)) == (409, b"8\n")
    assert again.add_checkpoint(_body(8, 9))[0] == 200


def test_a_wrong_old_size_gets_409_with_the_witness_size(w: Witness) -> None:
    assert w.add_checkpoint(_body(0, 6))[0] == 200
    status, body = w.add_checkpoint(_body(3, 10))
    assert (status, body) == (409, b"6\n")
    assert content_type(status, body) == "text/x.tlog.size"
    with pytest.raises(WitnessConflictError) as exc_info:
        parse_response(status, body)
    assert exc_info.value.size == 6


def test_a_bad_proof_gets_422_and_changes_nothing(w: Witness, state_path: Path) -> None:
    assert w.add_checkpoint(_body(0, 6))[0] == 200
    before = state_path.read_bytes()
    proof = merkle.consistency_proof_reference(6, HASHES[:12])
    proof[0] = bytes(32)
    status, body = w.add_checkpoint(build_request(6, proof, sign_checkpoint(_cp(12), LOG_KEY)))
    assert status == 422 and b"does not verify" in body
    assert w.add_checkpoint(build_request(6, [], sign_checkpoint(_cp(12), LOG_KEY)))[0] == 422
    assert w.add_checkpoint(build_request(0, [bytes(32)], sign_checkpoint(_cp(12), LOG_KEY)))[0] == 409
    assert state_path.read_bytes() == before


def test_a_rewritten_history_is_refused(w: Witness) -> None:
    assert w.add_checkpoint(_body(0, 6))[0] == 200
    rewritten = [*HASHES[:2], bytes(32), *HASHES[3:]]
    assert w.add_checkpoint(_body(6, 12, hashes=rewritten))[0] == 422


def test_equivocation_and_going_backwards_are_refused(w: Witness) -> None:
    assert w.add_checkpoint(_body(0, 10))[0] == 200
    other = [hashlib.sha256(f"other{i}".encode()).digest() for i in range(10)]
    status, body = w.add_checkpoint(_body(10, 10, hashes=other))
    assert status == 409 and body.startswith(b"equivocation")
    assert content_type(status, body).startswith("text/plain")
    with pytest.raises(WitnessRejectedError, match="409"):
        parse_response(status, body)
    assert w.add_checkpoint(_body(10, 4))[0] == 400  # old larger than the checkpoint
    assert w.add_checkpoint(_body(4, 4)) == (409, b"10\n")  # smaller than what it cosigned
    assert w.latest(ORIGIN) == (10, _cp(10).root_hash)


def test_unknown_logs_and_untrusted_keys_are_refused(w: Witness) -> None:
    stranger = Signer.from_seed("test.vledger/community/10", bytes(32))
    unknown = build_request(0, [], sign_checkpoint(Checkpoint(stranger.name, 1, HASHES[0]), stranger))
    assert w.add_checkpoint(unknown)[0] == 404
    impostor = Signer.from_seed(ORIGIN, bytes(range(1, 33)))  # the origin's name, another key
    status, body = w.add_checkpoint(_body(0, 3, signer=impostor))
    assert status == 403 and b"no valid signature by a trusted key" in body
    flipped = bytearray(_body(0, 3))
    flipped[-10] ^= 1
    assert w.add_checkpoint(bytes(flipped))[0] in (400, 403)
    assert w.latest(ORIGIN) == (0, merkle.EMPTY_ROOT)


@pytest.mark.parametrize(
    "body",
    [
        b"old 0\n",
        b"old 01\n\n" + sign_checkpoint(_cp(1), LOG_KEY),
        b"old -1\n\n" + sign_checkpoint(_cp(1), LOG_KEY),
        b"old 0\nnot-base64\n\n" + sign_checkpoint(_cp(2), LOG_KEY),
        b"old 0\nAAAA\n\n" + sign_checkpoint(_cp(2), LOG_KEY),
        b"old 1\n"
        + b"".join(b"A" * 43 + b"=\n" for _ in range(64))
        + b"\n"
        + sign_checkpoint(_cp(2), LOG_KEY),
        b"old 0\n\nnot a note",
    ],
)
def test_malformed_requests_get_400(w: Witness, body: bytes) -> None:
    assert w.add_checkpoint(body)[0] == 400


def test_a_log_may_have_two_trusted_keys_while_rotating(w: Witness) -> None:
    new_key = Signer.from_seed(ORIGIN, bytes(range(2, 34)))
    assert w.add_checkpoint(_body(0, 4))[0] == 200
    assert w.add_checkpoint(_body(4, 6, signer=new_key))[0] == 403
    w.trust(ORIGIN, new_key.verifier().vkey())
    assert w.add_checkpoint(_body(4, 6, signer=new_key))[0] == 200


def test_the_key_must_be_the_witness_own(key_path: Path, state_path: Path) -> None:
    with pytest.raises(SignerStateError, match="not of"):
        Witness("witness.test/w2", key_path, state_path, {})


def test_concurrent_requests_never_roll_the_state_back(w: Witness) -> None:
    results: list[int] = []

    def submit(old: int, size: int) -> None:
        results.append(w.add_checkpoint(_body(old, size))[0])

    threads = [threading.Thread(target=submit, args=(0, n)) for n in range(1, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Only the first to take the lock is at old size 0; the others conflict.
    assert results.count(200) == 1 and results.count(409) == 28
    assert w.latest(ORIGIN)[0] > 0


@pytest.fixture
def server_url(w: Witness) -> Iterator[str]:
    server = make_server(w, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_http_server_and_client(w: Witness, server_url: str) -> None:
    note = sign_checkpoint(_cp(7), LOG_KEY)
    [line] = request_cosignature(server_url, 0, [], note, timeout_s=5)
    verify_cosignature(line, format_checkpoint_body(_cp(7)), parse_witness_key(w.verifier_key()))
    with pytest.raises(WitnessConflictError) as exc_info:
        request_cosignature(server_url + "/", 3, [], sign_checkpoint(_cp(9), LOG_KEY), timeout_s=5)
    assert exc_info.value.size == 7
    client = HttpWitness(w.verifier_key(), server_url, timeout_s=5)
    proof = merkle.consistency_proof_reference(7, HASHES[:9])
    assert len(client.add_checkpoint(7, proof, sign_checkpoint(_cp(9), LOG_KEY))) == 1
    with pytest.raises(WitnessRejectedError, match="422"):
        client.add_checkpoint(9, [bytes(32)], sign_checkpoint(_cp(12), LOG_KEY))
    with pytest.raises(WitnessRejectedError, match="404"):
        request_cosignature(server_url + "/nowhere", 0, [], note, timeout_s=5)
    with pytest.raises(ValueError, match="not http"):
        request_cosignature("file:///etc", 0, [], note)


def test_an_unreachable_witness_raises_oserror() -> None:
    with pytest.raises(OSError, match=r"refused|timed out|Errno"):
        request_cosignature("http://127.0.0.1:9", 0, [], sign_checkpoint(_cp(1), LOG_KEY), timeout_s=1)


def test_the_local_adapter_speaks_the_same_protocol(w: Witness) -> None:
    local = LocalWitness(w)
    assert local.vkey == w.verifier_key()
    [line] = local.add_checkpoint(0, [], sign_checkpoint(_cp(3), LOG_KEY))
    verify_cosignature(line, format_checkpoint_body(_cp(3)), parse_witness_key(local.vkey))
    with pytest.raises(CosignatureError):
        verify_cosignature(line, format_checkpoint_body(_cp(4)), parse_witness_key(local.vkey))
    with pytest.raises(WitnessConflictError):
        local.add_checkpoint(0, [], sign_checkpoint(_cp(4), LOG_KEY))


def test_responses_that_are_not_signature_lines_are_rejected() -> None:
    for body in (b"", b"hello\n", b"\xe2\x80\x94 w AAAA", b"\xe2\x80\x94 w AAAA\nx\n"):
        with pytest.raises(WitnessRejectedError):
            parse_response(200, body)


def test_cli_init_writes_a_private_key_and_prints_the_vkey(tmp_path: Path) -> None:
    key = tmp_path / "w.key"
    result = CliRunner().invoke(witness_cli, ["init", "--name", NAME, "--key", str(key)])
    assert result.exit_code == 0, result.output
    vkey = result.stdout.strip()
    assert parse_witness_key(vkey).name == NAME and vkey.split("+")[2].startswith("B")  # type byte 0x04
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = CliRunner().invoke(witness_cli, ["init", "--name", NAME, "--key", str(key)])
    assert again.exit_code == 1 and "私钥文件已存在" in again.stderr
    bad = CliRunner().invoke(witness_cli, ["init", "--name", "has space", "--key", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "见证人名称" in bad.stderr


def test_cli_serve_rejects_bad_trust_arguments(tmp_path: Path, key_path: Path) -> None:
    state = str(tmp_path / "s.json")
    args = ["serve", "--name", NAME, "--key", str(key_path), "--state", state, "--port", "0"]
    result = CliRunner().invoke(witness_cli, [*args, "--trust", "no-equals-sign"])
    assert result.exit_code == 2 and "日志标识=公钥" in result.output
    result = CliRunner().invoke(witness_cli, [*args, "--trust", f"{ORIGIN}=not-a-key"])
    assert result.exit_code == 1 and "日志公钥无效" in result.stderr
