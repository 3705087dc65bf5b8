"""Builds the services the API and jobs use, from one pool and the settings (the composition root)."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from api.deps import AuditKeys, Services
from ledger.audit.signer import CheckpointSigner
from ledger.audit.witness import HttpWitness, WitnessClient
from ledger.config import Settings
from ledger.privacy.keyring import Keyring
from ledger.services.account_reads import AsyncAccountReads
from ledger.services.accounts import Accounts
from ledger.services.activities import Activities
from ledger.services.audit_log import AuditLog
from ledger.services.certificates import Certificates
from ledger.services.checkpoints import Checkpoints
from ledger.services.communities import Communities
from ledger.services.group_commit import GroupCommit
from ledger.services.households import Households
from ledger.services.identity import Identity, LoginLimiter
from ledger.services.ledger import Ledger
from ledger.services.people import People
from ledger.services.record_import import RecordImport
from ledger.services.requests import IdempotentRequests
from ledger.services.rule_settings import RuleSettings
from ledger.services.service_corrections import ServiceCorrections
from ledger.services.service_records import ServiceRecords
from ledger.services.shop import Shop
from ledger.services.shop_reports import ShopReports
from ledger.services.timebank import TimeBank
from ledger.services.timebank_members import TimeBankMembers, birth_dates
from ledger.store.db import Conn


def build_checkpoints(audit: AuditLog, pool: ConnectionPool[Conn], settings: Settings) -> Checkpoints:
    """The checkpoint publisher: the signer's keys and state outside the database, and witnesses."""
    signer_dir = settings.data_dir / "signer"
    signer = CheckpointSigner(
        settings.signer_key_dir or signer_dir / "keys",
        settings.signer_state_path or signer_dir / "state.json",
    )
    return Checkpoints(audit, signer, parse_witnesses(settings.witnesses), pool=pool)


def parse_witnesses(spec: str) -> list[WitnessClient]:
    """``vkey@url,vkey@url``: each witness's cosignature key and its submission URL."""
    out: list[WitnessClient] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        vkey, sep, url = item.partition("@")
        if not sep or not url.startswith(("http://", "https://")):
            raise ValueError("VLEDGER_WITNESSES entries look like <vkey>@<http(s) url>")
        out.append(HttpWitness(vkey, url))
    return out


def audit_keys(checkpoints: Checkpoints) -> AuditKeys:
    signer = checkpoints.signer

    def logs() -> list[tuple[str, str, int, int | None]]:
        return [
            (origin, record.vkey, record.valid_from, record.retired_at)
            for origin, _ in signer.verifier_keys()
            for record in signer.key_history(origin)
        ]

    return AuditKeys(logs=logs, witnesses=checkpoints.witness_keys)


def build_services(
    pool: ConnectionPool[Conn],
    settings: Settings,
    *,
    identity: Identity | None = None,
    audit_keys: AuditKeys | None = None,
) -> Services:
    ledger = Ledger(pool)
    communities = Communities(
        pool, origin_prefix=settings.log_origin_prefix, hot_buckets=settings.hot_account_buckets
    )
    keyring = Keyring.from_settings(settings)
    people = People(pool, keyring)
    return Services(
        ledger=ledger,
        account_reads=AsyncAccountReads(pool.conninfo if isinstance(pool.conninfo, str) else pool.conninfo()),
        transfers=GroupCommit(ledger),
        accounts=Accounts(pool),
        communities=communities,
        identity=identity or Identity(pool, session_ttl_s=settings.session_ttl_s),
        people=people,
        households=Households(pool),
        settings=RuleSettings(pool),
        requests=IdempotentRequests(pool),
        limiter=LoginLimiter(settings.login_attempts_per_minute),
        audit=AuditLog(pool),
        audit_keys=audit_keys or AuditKeys(logs=list, witnesses=list),
        # A posting holds its record's connection while the ledger writes on another (ADR 0007).
        activities=Activities(pool),
        records=ServiceRecords(pool, ledger, communities),
        corrections=ServiceCorrections(pool, ledger),
        record_import=RecordImport(pool, people, communities),
        certificates=Certificates(pool, people, public_base_url=settings.public_base_url),
        # Birth dates for the withdrawal age are decrypted in memory only (never logged).
        timebank=TimeBank(pool, communities, birth_date_of=birth_dates(people)),
        timebank_members=TimeBankMembers(pool, ledger, communities, birth_date_of=birth_dates(people)),
        # Pickup codes are hashed with the blind-index key under their own purpose (ledger.domain.shop).
        shop=Shop(pool, code_key=keyring.blind_index_key),
        shop_reports=ShopReports(pool),
    )
