"""A bulk import without the database: what rows share is worked out once per distinct value (ids,
deadlines, text checks) with the same results as row by row, the COPY text of records says what
the rows say, and the transfers are built a chunk at a time as the batch reads them."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.rule_settings import default_params, validate_params
from ledger.domain.service_credit import (
    CreditAccounts,
    CreditContext,
    ServiceRules,
    credit_postings,
    plan_credit,
)
from ledger.domain.service_records import check_place_and_content
from ledger.domain.transfers import TransferRequest
from ledger.domain.workdays import recording_deadline
from ledger.services import record_import_plan as plan
from ledger.services import record_import_rows as rows_out
from ledger.services import service_posting
from ledger.services.record_sheet import SheetRow
from ledger.store.record_import_repo import ImportText, PostedRecord, copy_escape
from ledger.store.service_records_repo import ActivityRow, Credited

COMMUNITY = 17
ACTOR = uuid.UUID("01950000-0000-7000-8000-0000000000ff")
LEADER = uuid.UUID("01950000-0000-7000-8000-0000000000ee")
PERSONS = [uuid.UUID(f"01950000-0000-7000-8000-00000000000{i}") for i in range(1, 5)]
RULES = ServiceRules.from_params(0, default_params())
WEEKDAYS = ServiceRules.from_params(2, validate_params({"working_day_calendar": "mon_to_fri"}))
NOW = datetime(2025, 3, 10, 4, tzinfo=UTC)


def activity(n: int, start: date, end: date) -> ActivityRow:
    return ActivityRow(
        uuid.UUID(int=0xA0 + n),
        f"活动{n}",
        start,
        end,
        "活动中心",
        "陪伴老人",
        "居委会",
        LEADER,
        None,
        None,
        NOW,
    )


# The last one ends where ten working days run past the official calendar's last year.
ACTIVITIES = [
    activity(0, date(2025, 3, 3), date(2025, 3, 7)),
    activity(1, date(2025, 1, 20), date(2025, 2, 7)),
    activity(2, date(2026, 12, 1), date(2026, 12, 28)),
]


def known(rules_on: dict[date, ServiceRules]) -> plan.Known:
    return plan.Known(
        community_id=COMMUNITY,
        actor_id=ACTOR,
        today=date(2025, 3, 10),
        by_id_number={f"ID{i}": p for i, p in enumerate(PERSONS)},
        person_erased=dict.fromkeys(PERSONS, False),
        activities=ACTIVITIES,
        rules_on=rules_on.__getitem__,
    )


class _RowByRow(plan._Shared):
    """The plain way: every row's deadline, text check and record id computed on its own, the id
    as the import has always named it."""

    def deadline(self, activity_end: date, rules: ServiceRules) -> date | None:
        try:
            return recording_deadline(
                activity_end, rules.recording_deadline_working_days, rules.working_day_calendar
            )
        except LedgerError as err:
            if err.code is not ErrorCode.CALENDAR_NOT_COVERED:
                raise
            return None

    def text_ok(self, name: str, value: str) -> bool:
        try:
            check_place_and_content(value if name == "place" else None, value if name == "content" else None)
        except LedgerError:
            return False
        return True

    def record_id(
        self, person: uuid.UUID, activity: uuid.UUID, day: date, start: time, end: time
    ) -> uuid.UUID:
        name = f"{COMMUNITY}|{person}|{activity}|{day.isoformat()}|{start:%H:%M}|{end:%H:%M}"
        return uuid.uuid5(plan._RECORD_NAMESPACE, name)


sheet_rows = st.builds(
    SheetRow,
    row=st.just(0),
    id_number=st.sampled_from(["ID0", "ID1", "ID2", "ID3"]),
    activity=st.sampled_from([a.name for a in ACTIVITIES]),
    service_date=st.sampled_from(
        [date(2025, 3, 3), date(2025, 3, 7), date(2025, 2, 1), date(2026, 12, 28), date(2026, 12, 2)]
    ),
    start_time=st.sampled_from([time(8, 0), time(9, 30), time(13, 5)]),
    end_time=st.sampled_from([time(15, 0), time(17, 45)]),
    place=st.sampled_from([None, "楼道", "x" * 201, "a\u0007b"]),
    content=st.sampled_from([None, "打扫", "x" * 201, "e\u0301"]),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(sheet_rows, max_size=40), st.booleans())
def test_shared_values_give_what_row_by_row_gives(rows: list[SheetRow], weekdays: bool) -> None:
    for n, row in enumerate(rows, start=2):
        row.row = n
    days = {r.service_date for r in rows if r.service_date is not None}
    rules = {d: WEEKDAYS if weekdays and d.day % 2 else RULES for d in days}
    headers = {"id_number": "证件号码", "activity": "活动名称"}
    plain_rows = copy.deepcopy(rows)
    shared = plan.resolve(rows, headers, known(rules))
    original = plan._Shared
    plan._Shared = _RowByRow  # type: ignore[misc]
    try:
        plain = plan.resolve(plain_rows, headers, known(rules))
    finally:
        plan._Shared = original  # type: ignore[misc]
    assert shared == plain
    assert rows == plain_rows  # the same problems on the same rows


def test_record_ids_never_change() -> None:
    """Importing a sheet again finds its records by these ids: their spelling is fixed forever."""
    person = uuid.UUID("01950000-0000-7000-8000-000000000001")
    act = uuid.UUID("01950000-0000-7000-8000-0000000000aa")
    shared = plan._Shared(COMMUNITY)
    assert shared.record_id(person, act, date(2025, 3, 5), time(9, 0), time(11, 45)) == uuid.UUID(
        "fb49efa1-ab1b-5cec-8b89-785bef2c305f"
    )
    assert shared.record_id(person, act, date(2025, 12, 31), time(0, 5), time(23, 59)) == uuid.UUID(
        "49647105-8819-5079-81d4-530abf719969"
    )


# ------------------------------------------------------------------------------- the COPY text


def copy_fields(line: str) -> list[str | None]:
    """A COPY text line back to its values (None for NULL)."""
    assert line.endswith("\n") and "\n" not in line[:-1] and "\r" not in line
    out: list[str | None] = []
    for field in line[:-1].split("\t"):
        if field == "\\N":
            out.append(None)
            continue
        text, i = [], 0
        while i < len(field):
            if field[i] == "\\":
                text.append({"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[field[i + 1]])
                i += 2
            else:
                text.append(field[i])
                i += 1
        out.append("".join(text))
    return out


def credited(transfer_id: uuid.UUID | None) -> Credited:
    return Credited(3, transfer_id, 150, 2, 150, 120, 30)


def test_a_record_line_holds_the_record() -> None:
    record_id, transfer_id = uuid.uuid4(), uuid.uuid4()
    act = ACTIVITIES[0]
    text = ImportText(COMMUNITY, ACTOR, NOW)
    for place, transfer in (("C:\\楼道\t二层\n东\r侧", transfer_id), ("活动中心", None)):
        record = PostedRecord(
            record_id,
            act.activity_id,
            PERSONS[0],
            date(2025, 3, 5),
            time(9, 0),
            time(11, 45),
            place,
            "陪伴老人",
            165,
            date(2025, 3, 21),
            LEADER,
            credited(transfer),
        )
        at = str(NOW)
        assert copy_fields(text.record(record)) == [
            str(COMMUNITY),
            str(record_id),
            str(act.activity_id),
            str(PERSONS[0]),
            "2025-03-05",
            "09:00:00",
            "11:45:00",
            place,
            "陪伴老人",
            "165",
            "2025-03-21",
            "posted",
            *(str(ACTOR), at, str(ACTOR), at, str(LEADER), at, str(ACTOR), at),
            "f",
            "3",
            None if transfer is None else str(transfer),
            *("150", "2", "150", "120", "30"),
        ]


def test_copy_escape() -> None:
    odd = 'C:\\楼道\t"二层"\n\r'
    assert copy_escape("plain") == "plain" and copy_escape("\\N") == "\\\\N"
    assert copy_escape(odd) == 'C:\\\\楼道\\t"二层"\\n\\r'


def test_output_numbers_transfers_in_order_and_builds_them_as_read() -> None:
    """Rows in more than one chunk, some crediting nothing: the text and the transfers are those of
    each row on its own; the transfers are built a chunk at a time, when first read."""
    act = ACTIVITIES[0]
    accounts = {p: CreditAccounts(*(uuid.uuid4() for _ in range(7))) for p in PERSONS}
    rows, plans = [], []
    for n in range(2 * rows_out.CHUNK_RECORDS + 7):
        minutes = 20 if n % 5 == 0 else 90  # 20 minutes round down to nothing
        end = time(9 + (minutes + 5) // 60, (minutes + 5) % 60)
        sheet = SheetRow(n + 2)
        person = PERSONS[n % len(PERSONS)]
        day = date(2025, 3, 3 + n % 5)
        record_id = uuid.uuid5(uuid.NAMESPACE_OID, str(n))
        rows.append(
            plan.ReadyRow(
                sheet, record_id, person, act, day, time(9, 5), end, "楼道", "打扫", date(2025, 3, 21), RULES
            )
        )
        plans.append(plan_credit(minutes, RULES, CreditContext(), day))
    out = rows_out.Output(COMMUNITY, rows, plans, ACTOR, NOW)
    records = [copy_fields(line + "\n") for s in out.chunks for line in out.records(s).splitlines()]
    assert len(records) == len(rows)
    transfer_ids = [None if r[22] is None else uuid.UUID(r[22]) for r in records]
    assert [t is None for t in transfer_ids] == [p.is_empty for p in plans]
    assert [t for t in transfer_ids if t is not None] == sorted(t for t in transfer_ids if t is not None)

    built: list[int] = []
    real = out.requests

    def counted(start: int, accounts: Mapping[uuid.UUID, CreditAccounts]) -> list[TransferRequest]:
        built.append(start)
        return real(start, accounts)

    out.requests = counted  # type: ignore[method-assign]
    lazy = rows_out.Requests(out, accounts)
    assert len(lazy) == out.transfer_count == sum(1 for p in plans if not p.is_empty) and built == []
    first = lazy[0]
    assert built == [0] and lazy[-1] is not None and built == list(out.chunks)
    with pytest.raises(IndexError):
        lazy[len(lazy)]
    with pytest.raises(IndexError):
        lazy[-len(lazy) - 1]
    requests = list(lazy)
    assert requests[0] is first and lazy[1:4] == requests[1:4] and lazy[-2:] == requests[-2:]
    assert requests == [q for s in out.chunks for q in real(s, accounts)]
    assert [q.transfer_id for q in requests] == [t for t in transfer_ids if t is not None]
    assert built == list(out.chunks)  # each chunk built once
    by_id = {r.record_id: (r, p) for r, p in zip(rows, plans, strict=True)}
    for q in requests:
        r, p = by_id[uuid.UUID(str(q.metadata["service_record_id"]))]
        assert q.postings == credit_postings(p, accounts[r.person_id])
        assert q.idempotency_key == service_posting.record_key(r.record_id)
        assert q.effective_us == service_posting.service_instant_us(r.service_date, r.start_time)
        assert (q.community_id, q.kind, q.actor_id) == (COMMUNITY, service_posting.TRANSFER_KIND, ACTOR)
        assert q.metadata == {
            "service_record_id": str(r.record_id),
            "settings_version": 0,
            "served_minutes": p.served_minutes,
            "credited_minutes": p.credited_minutes,
            "credited_points": p.credited_points,
            "earned_coin_minutes": p.earned_coin_minutes,
            "credited_coin_minutes": p.credited_coin_minutes,
            "pool_coin_minutes": p.pool_coin_minutes,
            "overdue": False,
            "source": "import",
        }
