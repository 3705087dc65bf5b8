"""What an import writes for its rows: posted records, their events, and the ledger's transfers.

Each record and transfer is what posting the row alone would write (ledger/services/service_records.py
and service_posting.post_plan): the same columns, the same ledger key ``service-record:<record_id>``,
the same metadata (plus ``source: import``). The events say who entered the record (the importer)
and who verified it (the activity's leader, on whose sheet the hours are), with the sheet's row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from ledger.domain.ids import uuid7_many
from ledger.domain.service_credit import CreditAccounts, CreditPlan, ServiceRules, credit_postings
from ledger.domain.transfers import Posting, TransferRequest
from ledger.services import service_posting as posting
from ledger.services.record_import_plan import ReadyRow
from ledger.store.record_import_repo import Event
from ledger.store.service_records_repo import Credited

EVENTS_PER_RECORD = 4  # created, submitted, verified, posted


@dataclass(frozen=True, slots=True)
class Rows:
    records: list[tuple[object, ...]]  # in record_import_repo.RECORD_COLUMNS order
    events: list[Event]
    requests: list[TransferRequest]  # one per record that credits anything


def build(
    community_id: int,
    rows: list[ReadyRow],
    plans: list[CreditPlan],
    accounts: dict[uuid.UUID, CreditAccounts],
    actor_id: uuid.UUID,
    now: datetime,
) -> Rows:
    out = Rows([], [], [])
    transfer_ids = iter(uuid7_many(len(rows)))
    event_ids = iter(uuid7_many(EVENTS_PER_RECORD * len(rows)))
    for r, p in zip(rows, plans, strict=True):
        postings = credit_postings(p, accounts[r.person_id])
        transfer_id = next(transfer_ids) if postings else None
        credited = _credited(r.rules, transfer_id, p)
        if postings:
            key = posting.record_key(r.record_id)
            out.requests.append(_request(community_id, r, p, key, postings, transfer_id, actor_id))
        leader = r.activity.leader_user_id
        assert leader is not None and leader != actor_id  # NO_VERIFIER otherwise
        out.records.append(_record(community_id, r, credited, actor_id, leader, now))
        source: dict[str, object] = {"source": "import", "row": r.sheet.row}
        posted = {**posting.credited_detail(credited), "overdue": False, **source}
        for kind, actor, detail in (
            ("created", actor_id, source),
            ("submitted", actor_id, source),
            ("verified", leader, source),
            ("posted", actor_id, posted),
        ):
            out.events.append((community_id, next(event_ids), r.record_id, kind, actor, now, detail))
    return out


def _credited(rules: ServiceRules, transfer_id: uuid.UUID | None, p: CreditPlan) -> Credited:
    return Credited(
        settings_version=rules.version,
        transfer_id=transfer_id,
        credited_minutes=p.credited_minutes,
        credited_points=p.credited_points,
        earned_coin_minutes=p.earned_coin_minutes,
        credited_coin_minutes=p.credited_coin_minutes,
        pool_coin_minutes=p.pool_coin_minutes,
    )


def _request(
    community_id: int,
    r: ReadyRow,
    p: CreditPlan,
    key: str,
    postings: tuple[Posting, ...],
    transfer_id: uuid.UUID | None,
    actor_id: uuid.UUID,
) -> TransferRequest:
    """The same transfer as a record posted alone (service_posting.post_plan), marked as imported."""
    metadata: dict[str, object] = {
        "service_record_id": str(r.record_id),
        "settings_version": r.rules.version,
        "served_minutes": p.served_minutes,
        "credited_minutes": p.credited_minutes,
        "credited_points": p.credited_points,
        "earned_coin_minutes": p.earned_coin_minutes,
        "credited_coin_minutes": p.credited_coin_minutes,
        "pool_coin_minutes": p.pool_coin_minutes,
        "overdue": False,
        "source": "import",
    }
    return TransferRequest(
        community_id,
        posting.TRANSFER_KIND,
        postings,
        key,
        effective_us=posting.service_instant_us(r.service_date, r.start_time),
        actor_id=actor_id,
        transfer_id=transfer_id,
        metadata=metadata,
    )


def _record(
    community_id: int,
    r: ReadyRow,
    c: Credited,
    actor_id: uuid.UUID,
    leader: uuid.UUID | None,
    now: datetime,
) -> tuple[object, ...]:
    """A posted record, in record_import_repo.RECORD_COLUMNS order."""
    return (
        community_id,
        r.record_id,
        r.activity.activity_id,
        r.person_id,
        r.service_date,
        r.start_time,
        r.end_time,
        r.place,
        r.content,
        r.served_minutes,
        r.deadline,
        "posted",
        actor_id,
        now,
        actor_id,
        now,
        leader,
        now,
        actor_id,
        now,
        False,
        c.settings_version,
        c.transfer_id,
        c.credited_minutes,
        c.credited_points,
        c.earned_coin_minutes,
        c.credited_coin_minutes,
        c.pool_coin_minutes,
    )
