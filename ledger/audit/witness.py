"""C2SP tlog-witness: the add-checkpoint witness, its HTTP server, and the clients the service calls."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

from ledger.audit.checkpoint import MAX_TREE_SIZE, Checkpoint, parse_checkpoint_body
from ledger.audit.cosignature import WitnessVerifier, cosign, parse_witness_key
from ledger.audit.merkle import EMPTY_ROOT, HASH_SIZE, ProofError, verify_consistency
from ledger.audit.note import NoteError, Verifier, decode_b64, open_note, parse_note, parse_verifier_key
from ledger.audit.signer import SignerStateError, load_key_file, locked, write_private_file

__all__ = [
    "MAX_PROOF_LINES",
    "HttpWitness",
    "LocalWitness",
    "Witness",
    "WitnessClient",
    "WitnessConflictError",
    "WitnessError",
    "WitnessRejectedError",
    "build_request",
    "content_type",
    "make_server",
    "parse_response",
    "request_cosignature",
]

log = logging.getLogger(__name__)

#: Most consistency proof lines a request may carry (the spec's limit: a proof over 2^64 leaves).
MAX_PROOF_LINES = 63
#: Largest request body the HTTP server reads: 63 proof lines and a note with 100 signatures fit easily.
MAX_BODY = 64 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"

_OLD = re.compile(rb"old (0|[1-9][0-9]{0,19})")
_SIZE_BODY = re.compile(rb"(0|[1-9][0-9]{0,19})\n")


class WitnessError(Exception):
    """A witness did not return a cosignature; the message says why."""


class WitnessConflictError(WitnessError):
    """409 with the witness's size: ``old`` did not match the latest size it cosigned for the log."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the witness's latest cosigned size is {size}")
        self.size = size


class WitnessRejectedError(WitnessError):
    """Any other refusal: status code and the witness's explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"witness answered {status}: {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class _Request:
    old_size: int
    proof: tuple[bytes, ...]
    note: bytes
    checkpoint: Checkpoint


def _parse_request(body: bytes) -> _Request:
    """Split ``old N``, the proof lines, the empty line and the note; ValueError says what is wrong."""
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise ValueError("the request has no empty line before the checkpoint")
    lines = head.split(b"\n")
    first = _OLD.fullmatch(lines[0])
    if first is None:
        raise ValueError("the first line must be 'old <size>' (decimal, no leading zeros)")
    old_size = int(first.group(1))
    if old_size > MAX_TREE_SIZE:
        raise ValueError(f"old size {old_size} is larger than 2^64-1")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ValueError(f"{len(lines) - 1} proof lines; at most {MAX_PROOF_LINES} are allowed")
    proof = []
    for n, line in enumerate(lines[1:], start=1):
        try:
            digest = decode_b64(line.decode("ascii"), f"proof line {n}")
        except UnicodeDecodeError:
            raise ValueError(f"proof line {n} is not ASCII base64") from None
        if len(digest) != HASH_SIZE:
            raise ValueError(f"proof line {n} is {len(digest)} bytes, not a 32-byte hash")
        proof.append(digest)
    text, _ = parse_note(note)
    return _Request(old_size, tuple(proof), note, parse_checkpoint_body(text))


def _text(message: str) -> bytes:
    return (message + "\n").encode()


class Witness:
    """A witness: cosigns a log's checkpoint only if it extends the last one it cosigned for that log.

    State (per origin, the latest cosigned size and root) is a JSON file written atomically before
    any cosignature is returned; checking and updating it happen under one lock, so two concurrent
    requests cannot roll the state back (the race the spec warns about).
    """

    def __init__(
        self,
        name: str,
        key_path: Path,
        state_path: Path,
        trusted_logs: Mapping[str, str | Sequence[str]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signer = load_key_file(key_path)
        if self._signer.name != name:
            raise SignerStateError(
                f"key file {key_path} is the key of {self._signer.name!r}, not of {name!r}"
            )
        self._state_path = state_path
        self._clock = clock
        self._mutex = threading.Lock()
        self._trusted: dict[str, list[Verifier]] = {}
        for origin, vkeys in trusted_logs.items():
            for vkey in [vkeys] if isinstance(vkeys, str) else vkeys:
                self.trust(origin, vkey)
        self._read_state()  # a malformed state file stops start-up, not the first request

    @property
    def name(self) -> str:
        return self._signer.name

    def verifier_key(self) -> str:
        """The witness's cosignature/v1 (type 0x04) verifier key."""
        return WitnessVerifier.of(self._signer).vkey()

    def trust(self, origin: str, vkey: str) -> None:
        """Accept checkpoints of ``origin`` signed by ``vkey`` (a log has two keys while rotating)."""
        verifier = parse_verifier_key(vkey)
        if verifier.name != origin:
            raise NoteError(f"log key {vkey} is named {verifier.name!r}, not after the origin {origin!r}")
        self._trusted.setdefault(origin, []).append(verifier)

    def latest(self, origin: str) -> tuple[int, bytes]:
        """The latest (size, root) cosigned for ``origin``; (0, empty root) if none."""
        return self._read_state().get(origin, (0, EMPTY_ROOT))

    def add_checkpoint(self, request_body: bytes) -> tuple[int, bytes]:
        """Handle one add-checkpoint request body; returns (HTTP status, response body)."""
        try:
            req = _parse_request(request_body)
        except ValueError as exc:  # NoteError is a ValueError too
            return 400, _text(f"malformed request: {exc}")
        cp = req.checkpoint
        verifiers = self._trusted.get(cp.origin)
        if verifiers is None:
            return 404, _text(f"unknown log {cp.origin!r}")
        try:
            open_note(req.note, verifiers)
        except NoteError as exc:
            return 403, _text(f"no valid signature by a trusted key of {cp.origin!r}: {exc}")
        if req.old_size > cp.size:
            return 400, _text(f"old size {req.old_size} is larger than the checkpoint size {cp.size}")
        with self._mutex, locked(self._state_path):
            return self._advance(req)

    def _advance(self, req: _Request) -> tuple[int, bytes]:
        cp = req.checkpoint
        state = self._read_state()
        size, root = state.get(cp.origin, (0, EMPTY_ROOT))
        if req.old_size != size:
            return 409, f"{size}\n".encode()
        if cp.size == size and cp.root_hash != root:
            self._evidence("two roots for one size", req)
            return 409, _text(
                f"equivocation: root {cp.root_hash.hex()} for size {size}, cosigned with {root.hex()}"
            )
        try:
            verify_consistency(size, cp.size, root, cp.root_hash, req.proof)
        except ProofError as exc:
            self._evidence(str(exc), req)
            return 422, _text(f"consistency proof from size {size} does not verify: {exc}")
        if (cp.size, cp.root_hash) != (size, root):
            state[cp.origin] = (cp.size, cp.root_hash)
            self._write_state(state)  # on disk before the cosignature leaves
        text = parse_note(req.note)[0]
        return 200, cosign(text, self._signer, int(self._clock())).encode()

    def _evidence(self, reason: str, req: _Request) -> None:
        # A validly signed, inconsistent checkpoint may prove the log misbehaved: keep it in the log.
        log.warning(
            "witness %s refuses %s at size %d (%s); request: %s",
            self.name,
            req.checkpoint.origin,
            req.checkpoint.size,
            reason,
            base64.b64encode(req.note).decode(),
        )

    def _read_state(self) -> dict[str, tuple[int, bytes]]:
        try:
            raw = json.loads(self._state_path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SignerStateError(f"cannot read witness state {self._state_path}: {exc}") from exc
        try:
            return {o: (int(e["size"]), bytes.fromhex(e["root"])) for o, e in raw["logs"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise SignerStateError(f"witness state {self._state_path} is malformed: {exc!r}") from exc

    def _write_state(self, state: dict[str, tuple[int, bytes]]) -> None:
        logs = {o: {"size": s, "root": r.hex()} for o, (s, r) in sorted(state.items())}
        data = json.dumps({"version": 1, "logs": logs}, indent=2, sort_keys=True) + "\n"
        write_private_file(self._state_path, data.encode())


# ----------------------------------------------------------------------------------------- HTTP


def content_type(status: int, body: bytes) -> str:
    """The Content-Type of a response: a 409 carrying the witness's size is ``text/x.tlog.size``."""
    if status == 409 and _SIZE_BODY.fullmatch(body):
        return SIZE_CONTENT_TYPE
    return "text/plain; charset=utf-8"


def make_server(witness: Witness, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP/1.1 server (keep-alive) answering ``POST /add-checkpoint``; call ``serve_forever``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/add-checkpoint":
                self._reply(404, b"not found\n")
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._reply(411, b"Content-Length required\n")
                return
            if not 0 <= length <= MAX_BODY:
                self._reply(413, b"request too large\n")
                return
            status, body = witness.add_checkpoint(self.rfile.read(length))
            self._reply(status, body)

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type(status, body))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.info("%s %s", self.address_string(), format % args)

    return ThreadingHTTPServer((host, port), Handler)


# -------------------------------------------------------------------------------------- clients


def build_request(old_size: int, proof: Sequence[bytes], note: bytes) -> bytes:
    """An add-checkpoint request: ``old <size>``, a base64 line per proof hash, an empty line, the note."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n").encode() + note


def parse_response(status: int, body: bytes) -> list[str]:
    """The cosignature lines of a 200 response; raises WitnessConflictError or WitnessRejectedError."""
    if status == 409 and _SIZE_BODY.fullmatch(body):
        raise WitnessConflictError(int(body))
    text = body.decode("utf-8", errors="replace")
    if status != 200:
        raise WitnessRejectedError(status, text.strip()[:500])
    if not text.endswith("\n") or not text.startswith("\u2014 "):
        raise WitnessRejectedError(status, "the response is not a sequence of signature lines")
    lines = [line + "\n" for line in text[:-1].split("\n")]
    if any(not line.startswith("\u2014 ") for line in lines):
        raise WitnessRejectedError(status, "the response has a line that is not a signature line")
    return lines


def request_cosignature(
    url: str, old_size: int, proof: Sequence[bytes], note: bytes, timeout_s: float = 10.0
) -> list[str]:
    """POST an add-checkpoint request to the witness whose submission prefix is ``url``.

    Returns the cosignature lines (each ending in a newline). Raises WitnessConflictError (409 with
    the witness's size), WitnessRejectedError (other statuses) or OSError (network, timeout).
    """
    endpoint = url.rstrip("/") + "/add-checkpoint"
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(f"witness URL {url!r} is not http or https")
    body = build_request(old_size, proof, note)
    request = urllib.request.Request(endpoint, data=body, method="POST")  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - scheme checked
            return parse_response(response.status, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return parse_response(exc.code, exc.read())


class WitnessClient(Protocol):
    """A witness the service asks for cosignatures, over HTTP or in process."""

    @property
    def vkey(self) -> str: ...

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: bytes) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class HttpWitness:
    """A witness reached over HTTP: its cosignature vkey and submission prefix URL."""

    vkey: str
    url: str
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        parse_witness_key(self.vkey)

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: bytes) -> list[str]:
        return request_cosignature(self.url, old_size, proof, note, self.timeout_s)


@dataclass(frozen=True, slots=True)
class LocalWitness:
    """A Witness object called in process (tests, or a witness run inside the service's own host)."""

    witness: Witness

    @property
    def vkey(self) -> str:
        return self.witness.verifier_key()

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: bytes) -> list[str]:
        return parse_response(*self.witness.add_checkpoint(build_request(old_size, proof, note)))
