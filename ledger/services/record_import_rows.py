"""What an import writes for its rows: posted records and the ledger's transfers.

Each record and transfer is what posting the row alone would write (ledger/services/service_records.py
and service_posting.post_plan): the same columns, the same ledger key ``service-record:<record_id>``,
the same metadata (plus ``source: import``). The records say who entered them (the importer) and who
verified them (the activity's leader, on whose sheet the hours are); their events are derived from
them on the server (record_import_repo.insert_events).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time
from typing import overload

from ledger.domain.ids import uuid7_many
from ledger.domain.service_credit import CreditAccounts, CreditPlan, ServiceRules, credit_postings
from ledger.domain.transfers import Posting, TransferRequest
from ledger.services import service_posting as posting
from ledger.services.record_import_plan import ReadyRow
from ledger.store.record_import_repo import ImportText, PostedRecord
from ledger.store.service_records_repo import Credited

# Records per chunk of COPY text sent to the server (some 500 kB).
CHUNK_RECORDS = 1000


class Output:
    """What an import writes for its new rows (in sheet order), given their plans: the records as
    COPY text, and the transfers. The text needs only the plans (each row that credits anything
    gets its transfer id with its chunk); the transfers need the volunteers' accounts too. Each
    comes in chunks of CHUNK_RECORDS rows, so that the caller can send one while it builds the next."""

    def __init__(
        self,
        community_id: int,
        rows: list[ReadyRow],
        plans: list[CreditPlan],
        actor_id: uuid.UUID,
        now: datetime,
    ) -> None:
        assert len(rows) == len(plans)
        self._community_id = community_id
        self._rows = rows
        self._plans = plans
        self._actor_id = actor_id
        self._text = ImportText(community_id, actor_id, now)
        self._credited: dict[int, list[Credited]] = {}  # by chunk

    @property
    def transfer_count(self) -> int:
        """How many of the rows credit anything (each such row has a transfer)."""
        return sum(1 for p in self._plans if not p.is_empty)

    @property
    def chunks(self) -> range:
        """Where each chunk starts."""
        return range(0, len(self._rows), CHUNK_RECORDS)

    def _chunk(self, start: int) -> range:
        return range(start, min(start + CHUNK_RECORDS, len(self._rows)))

    def _credits(self, start: int) -> list[Credited]:
        """What each row of the chunk credits, with its transfer id if it credits anything."""
        credited = self._credited.get(start)
        if credited is None:
            plans = [self._plans[i] for i in self._chunk(start)]
            # A plan that credits nothing has no postings, hence no transfer (credit_postings).
            ids = iter(uuid7_many(sum(1 for p in plans if not p.is_empty)))
            rules = [self._rows[i].rules for i in self._chunk(start)]
            credited = self._credited[start] = [
                _credited(r, None if p.is_empty else next(ids), p) for r, p in zip(rules, plans, strict=True)
            ]
        return credited

    def records(self, start: int) -> str:
        """The COPY text of the records of the chunk from row ``start``."""
        text = self._text
        lines: list[str] = []
        for i, credited in zip(self._chunk(start), self._credits(start), strict=True):
            r = self._rows[i]
            leader = r.activity.leader_user_id
            assert leader is not None and leader != self._actor_id  # NO_VERIFIER otherwise
            lines.append(text.record(_record(r, credited, leader)))
        return "".join(lines)

    def requests(self, start: int, accounts: Mapping[uuid.UUID, CreditAccounts]) -> list[TransferRequest]:
        """The transfers of the rows of the chunk from row ``start`` that credit anything."""
        out: list[TransferRequest] = []
        began: dict[tuple[date, time], int] = {}  # when each distinct service began
        for i, credited in zip(self._chunk(start), self._credits(start), strict=True):
            transfer_id = credited.transfer_id
            if transfer_id is None:
                continue
            r, p = self._rows[i], self._plans[i]
            postings = credit_postings(p, accounts[r.person_id])
            assert postings
            when = (r.service_date, r.start_time)
            if when not in began:
                began[when] = posting.service_instant_us(*when)
            out.append(_request(self._community_id, r, p, began[when], postings, transfer_id, self._actor_id))
        return out


class Requests(Sequence[TransferRequest]):
    """An Output's transfers, built a chunk at a time when first read: the batch path reads them in
    order, so each chunk is built while the server works on what was sent before it."""

    def __init__(self, out: Output, accounts: Mapping[uuid.UUID, CreditAccounts]) -> None:
        self._out = out
        self._accounts = accounts
        self._starts = iter(out.chunks)
        self._built: list[TransferRequest] = []
        self._len = out.transfer_count

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> TransferRequest: ...

    @overload
    def __getitem__(self, index: slice) -> list[TransferRequest]: ...

    def __getitem__(self, index: int | slice) -> TransferRequest | list[TransferRequest]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        built = self._built
        while len(built) <= index:
            built.extend(self._out.requests(next(self._starts), self._accounts))
        return built[index]

    def __iter__(self) -> Iterator[TransferRequest]:
        for i in range(self._len):
            yield self[i]


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
    began_us: int,
    postings: tuple[Posting, ...],
    transfer_id: uuid.UUID,
    actor_id: uuid.UUID,
) -> TransferRequest:
    """The same transfer as a record posted alone (service_posting.post_plan), marked as imported.
    ``began_us``: when the service began."""
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
        posting.record_key(r.record_id),
        effective_us=began_us,
        actor_id=actor_id,
        transfer_id=transfer_id,
        metadata=metadata,
    )


def _record(r: ReadyRow, c: Credited, leader: uuid.UUID) -> PostedRecord:
    return PostedRecord(
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
        leader,
        c,
    )
