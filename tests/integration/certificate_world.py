"""A service-record world with registered people, certificates and a checkpoint signer with one witness,
for the integration tests of certificates (one fresh community per test)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from service_world import World

from ledger.audit.checkpoint import Checkpoint, format_checkpoint_body, sign_checkpoint
from ledger.audit.cosignature import WitnessVerifier, cosign
from ledger.audit.note import Signer
from ledger.domain.people import PersonProfile
from ledger.privacy import Keyring
from ledger.services.audit_log import AuditLog
from ledger.services.certificates import Certificates
from ledger.services.people import People
from ledger.store.service_records_repo import ActivityRow
from vledger.audit_cli import audit

BASE_URL = "https://ledger.example.org"
NAME, ID_NUMBER, PHONE = "张三丰", "11010519491231002X", "13800138000"
COSIGNED_AT = 1_741_600_000


@dataclass
class CertWorld:
    w: World
    people: People
    certs: Certificates
    audit: AuditLog
    log_signer: Signer
    witness: Signer

    @property
    def cid(self) -> int:
        return self.w.cid

    @property
    def log_vkey(self) -> str:
        return self.log_signer.verifier().vkey()

    @property
    def witness_vkey(self) -> str:
        return WitnessVerifier.of(self.witness).vkey()

    def volunteer(
        self, name: str = NAME, id_number: str | None = ID_NUMBER, phone: str | None = PHONE
    ) -> uuid.UUID:
        profile = PersonProfile(name=name, id_number=id_number, phone=phone)
        return self.people.create(
            self.cid, profile, consent_entry=True, consent_publish=False, entered_by_self=False
        )

    def serve(self, person: uuid.UUID, activity: ActivityRow, day: date, start: time, end: time) -> uuid.UUID:
        return self.w.posted(person, activity, day, start, end).record_id

    def sign(self, *, cosigned: bool = True) -> int:
        """Fold the log into the tree and store a signed (and witnessed) checkpoint of it."""
        size, root = self.audit.ingest(self.cid)
        checkpoint = Checkpoint(self.audit.origin(self.cid), size, root)
        note = sign_checkpoint(checkpoint, self.log_signer)
        if cosigned:
            note += cosign(format_checkpoint_body(checkpoint), self.witness, COSIGNED_AT).encode()
        self.audit.store_checkpoint(self.cid, size, root, note)
        return size

    def verify(self, bundle: bytes, tmp: Path, *extra: str) -> tuple[int, dict[str, Any]]:
        """``vledger audit verify-certificate`` on the bundle: (exit code, JSON report)."""
        import json  # noqa: PLC0415

        path = tmp / f"bundle-{uuid.uuid4().hex[:8]}.json"
        path.write_bytes(bundle)
        args = [
            "verify-certificate",
            str(path),
            "--log-key",
            self.log_vkey,
            "--witness-key",
            self.witness_vkey,
        ]
        result = CliRunner().invoke(audit, [*args, *extra])
        return result.exit_code, json.loads(result.stdout)


def make_cert_world(w: World, audit_log: AuditLog) -> CertWorld:
    people = People(w.pool, Keyring.generate("t1"), clock=w.clock)
    certs = Certificates(w.pool, people, public_base_url=BASE_URL, clock=w.clock)
    origin = audit_log.origin(w.cid)
    return CertWorld(
        w,
        people,
        certs,
        audit_log,
        Signer.from_seed(origin, bytes(range(32))),
        Signer.from_seed("witness.example.org/w1", bytes(range(32, 64))),
    )
