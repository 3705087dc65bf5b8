"""Bulk import of service records on real PostgreSQL: the dry run's row report, atomic posting
through the batch path, the credit rules of single records, importing twice, refusals."""

from __future__ import annotations

import io
import uuid
from datetime import date, datetime, time

import pytest
from openpyxl import Workbook
from psycopg_pool import ConnectionPool
from service_world import HOUR, World, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.people import PersonProfile
from ledger.domain.service_records import ActivityFields
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from ledger.privacy.keyring import Keyring
from ledger.services import batch
from ledger.services.communities import Communities, CommunityInfo
from ledger.services.ledger import Ledger
from ledger.services.people import People
from ledger.services.record_import import ImportReport, RecordImport
from ledger.store.db import Conn

HEADER = "姓名,证件号码,活动名称,服务日期,开始时间,结束时间,服务地点,服务内容,组织单位,活动负责人\n"
ID_A, ID_B = "11010519491231002X", "320102198001011238"


@pytest.fixture
def w(
    pool: ConnectionPool[Conn],
    owner: Conn,
    ledger: Ledger,
    communities: Communities,
    community: CommunityInfo,
) -> World:
    return make_world(pool, owner, ledger, communities, community)


@pytest.fixture
def people(pool: ConnectionPool[Conn]) -> People:
    return People(pool, Keyring.generate())


@pytest.fixture
def importer(w: World, people: People) -> RecordImport:
    return RecordImport(w.pool, people, w.communities, clock=w.clock)


def register(w: World, people: People, id_number: str, name: str = "张伟") -> uuid.UUID:
    profile = PersonProfile(name=name, id_number=id_number)
    return people.create(w.cid, profile, consent_entry=True, consent_publish=False, entered_by_self=False)


def csv(*rows: str, header: str = HEADER, bom: bool = True) -> bytes:
    return ("\ufeff" if bom else "").encode() + (header + "\n".join(rows) + "\n").encode()


def records_of(w: World) -> list[tuple[object, ...]]:
    return w.owner.execute(
        "SELECT record_id, person_id, state, credited_minutes, verified_by, created_by FROM service_record"
        " WHERE community_id = %s ORDER BY service_date, start_time",
        (w.cid,),
    ).fetchall()


def codes(report: ImportReport) -> list[tuple[int, str | None, str]]:
    return [(p.row, p.column, p.code) for p in report.problems]


def test_a_dry_run_reports_every_row_and_writes_nothing(
    w: World, people: People, importer: RecordImport
) -> None:
    a = register(w, people, ID_A)
    w.activity()
    sheet = csv(
        f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,11:45,,,,王主任",
        "李四,11010119900101999X,社区助老服务,2025-03-05,09:00,11:00,,,,",  # nobody with this ID
        f"张伟,{ID_A},社区助老服务,2025/3/5,11:00,12:00,,,,",  # overlaps row 2
        f"张伟,{ID_A},社区助老服务,2025年3月5日,09:00,11:45,,,,",  # repeats row 2
        f"张伟,{ID_A},不存在的活动,2025-03-05,13:00,14:00,,,,",
        f"张伟,{ID_A},社区助老服务,2025-03-32,9点,14:00,,,,",
        f"张伟,{ID_A},社区助老服务,2025-03-08,13:00,12:00,,,别的单位,",
        f"张伟,{ID_A},社区助老服务,2025-03-11,13:00,14:00,,,,",
        f",{ID_A},社区助老服务,2025-03-06,13:00,14:00,,,,",
    )
    report = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=True)
    assert codes(report) == [
        (3, "证件号码", "PERSON_NOT_FOUND"),
        (4, "开始时间", "OVERLAP"),
        (5, "开始时间", "DUPLICATE_ROW"),
        (6, "活动名称", "ACTIVITY_NOT_FOUND"),
        (7, "开始时间", "BAD_TIME"),
        (7, "服务日期", "BAD_DATE"),
        (8, "结束时间", "END_NOT_AFTER_START"),
        (9, "服务日期", "FUTURE_DATE"),
    ]
    assert [p.other_row for p in report.problems[1:3]] == [2, 2]
    assert (report.rows, report.ready_rows, report.problem_rows, report.committed) == (9, 2, 7, False)
    assert report.credited_minutes == 150 + 60  # what the good rows would credit
    assert ID_A not in repr(report) and "张伟" not in repr(report)
    assert records_of(w) == []
    assert a is not None


def test_a_real_run_posts_the_sheet_once_with_the_rules_of_single_records(
    w: World, people: People, importer: RecordImport
) -> None:
    a, b = register(w, people, ID_A), register(w, people, ID_B, "李娜")
    w.publish(date(2025, 1, 1), per_activity_cap_minutes=3 * HOUR)
    act = w.activity()
    sheet = csv(
        f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,11:45,,,幸福社区居委会,",  # 150
        f"张伟,{ID_A},社区助老服务,2025-03-06,09:00,11:00,楼道,打扫楼道,,",  # 120 → 30 under the 180 cap
        f"李娜,{ID_B.lower()},社区助老服务,2025-03-06,14:00,15:00,,,,",
    )
    report = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False)
    assert (report.committed, report.ready_rows, report.transfers, report.problems) == (True, 3, 3, [])
    assert report.credited_minutes == 150 + 30 + 60
    rows = records_of(w)
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        (a, "posted", 150, w.leader, w.worker),
        (a, "posted", 30, w.leader, w.worker),
        (b, "posted", 60, w.leader, w.worker),
    ]
    assert (
        w.balance(a, Unit.SERVICE_MINUTES) == 180 and w.balance(a, Unit.POINTS) == 2
    )  # 2.5 h → 2, 0.5 h → 0
    assert w.balance(b, Unit.COIN_MINUTES) == 60
    keys = [k for r in rows for (_, _, k) in w.transfers_for(r[0])]  # type: ignore[arg-type]
    assert keys == [f"service-record:{r[0]}" for r in rows]
    second = w.records.get(w.cid, rows[1][0])  # type: ignore[arg-type]
    assert (second.place, second.content, second.activity_id) == ("楼道", "打扫楼道", act.activity_id)
    events = w.records.history(w.cid, second.record_id)
    assert [(e.kind, e.actor_id) for e in events] == [
        ("created", w.worker),
        ("submitted", w.worker),
        ("verified", w.leader),
        ("posted", w.worker),
    ]
    assert events[2].detail == {"source": "import", "row": 3}

    again = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False)
    assert (again.committed, again.ready_rows, again.already_imported_rows, again.transfers) == (
        True,
        0,
        3,
        0,
    )
    assert len(records_of(w)) == 3 and w.balance(a, Unit.SERVICE_MINUTES) == 180


def test_the_coin_storage_cap_sends_the_excess_to_the_pool(
    w: World, people: People, importer: RecordImport
) -> None:
    a = register(w, people, ID_A)
    w.award(a, Unit.COIN_MINUTES, 1498 * HOUR)  # scenario 8: at 1498 h, 3 h of service
    w.activity()
    report = importer.run(
        w.cid, csv(f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,12:00,,,,"), actor_id=w.worker, dry_run=False
    )
    assert (report.credited_minutes, report.credited_coin_minutes, report.pool_coin_minutes) == (180, 120, 60)
    assert w.balance(a, Unit.COIN_MINUTES) == 1500 * HOUR and w.pool_coins() == 60


def test_a_sheet_with_any_problem_is_refused_whole(w: World, people: People, importer: RecordImport) -> None:
    a = register(w, people, ID_A)
    w.activity()
    sheet = csv(
        f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,11:00,,,,",
        f"张伟,{ID_A},社区助老服务,2025-03-05,09:30,10:00,,,,",
    )
    report = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False)
    assert (report.committed, report.transfers, codes(report)) == (False, 0, [(3, "开始时间", "OVERLAP")])
    assert records_of(w) == []
    assert w.owner.execute("SELECT count(*) FROM account WHERE owner_id = %s", (a,)).fetchone() == (0,)


def test_records_and_transfers_are_one_transaction(
    w: World, people: People, importer: RecordImport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch fails after the records were written on its connection: none of them stays."""
    a = register(w, people, ID_A)
    w.activity()
    real = batch.write_batch

    def failing(conn: Conn, requests: list[TransferRequest], *, clock: object) -> object:
        bogus = Posting(uuid.uuid4(), Unit.POINTS, 1), Posting(uuid.uuid4(), Unit.POINTS, -1)
        return real(conn, [*requests, TransferRequest(w.cid, "award", bogus, "bogus")], clock=clock)  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "write_batch", failing)
    sheet = csv(f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,11:00,,,,")
    with pytest.raises(LedgerError, check=lambda e: e.code is ErrorCode.ACCOUNT_NOT_FOUND):
        importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False)
    assert records_of(w) == []
    assert w.balance(a, Unit.SERVICE_MINUTES) == 0
    monkeypatch.undo()
    assert importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False).transfers == 1


def test_existing_records_deadlines_and_verifiers(w: World, people: People, importer: RecordImport) -> None:
    a = register(w, people, ID_A)
    act = w.activity()
    manual = w.record(a, act, date(2025, 3, 5), time(9, 0), time(10, 0))
    w.activity(date(2025, 1, 6), date(2025, 1, 10), name="迎新春活动")  # due 2025-01-24, past on 03-10
    w.owner.execute(
        "INSERT INTO app_user (user_id, username) VALUES (%s, %s)", (w.worker, f"w-{w.worker.hex[:12]}")
    )
    mine = w.activities.create(
        w.cid, act_fields("自己负责的活动"), leader_user_id=w.worker, actor_id=w.worker
    )
    sheet = csv(
        f"张伟,{ID_A},社区助老服务,2025-03-05,09:30,11:00,,,,",
        f"张伟,{ID_A},迎新春活动,2025-01-08,09:00,10:00,,,,",
        f"张伟,{ID_A},自己负责的活动,2025-03-05,14:00,15:00,,,,",
        header="姓名,证件号码,活动名称,服务日期,开始时间,结束时间,服务地点,服务内容,组织单位,活动负责人\n",
    )
    report = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=True)
    assert codes(report) == [
        (2, "开始时间", "OVERLAPS_RECORD"),
        (3, "服务日期", "RECORDING_OVERDUE"),
        (4, "活动名称", "NO_VERIFIER"),
    ]
    assert report.problems[0].record_id == manual.record_id
    assert mine.leader_user_id == w.worker


def act_fields(name: str) -> ActivityFields:
    return ActivityFields(name, date(2025, 3, 3), date(2025, 3, 7), "活动中心", "服务", "居委会")


def test_xlsx_gb18030_person_ids_and_unreadable_files(
    w: World, people: People, importer: RecordImport
) -> None:
    a = register(w, people, ID_A)
    act = w.activity()
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["人员编号", "活动编号", "服务日期", "开始时间", "结束时间", "服务时长（小时）", "备注"])
    sheet.append([str(a), str(act.activity_id), datetime(2025, 3, 5), time(9, 0), time(10, 30), 1.5, "x"])
    sheet.append([str(a), str(act.activity_id), datetime(2025, 3, 6), "14:00", "15:00", 2, None])
    data = io.BytesIO()
    book.save(data)
    report = importer.run(w.cid, data.getvalue(), actor_id=w.worker, dry_run=True)
    assert (codes(report), report.ready_rows, report.ignored_columns) == (
        [(3, "服务时长（小时）", "HOURS_MISMATCH")],
        1,
        ["G"],
    )

    numeric = Workbook()
    ws = numeric.active
    assert ws is not None
    ws.append(["证件号码", "活动名称", "服务日期", "开始时间", "结束时间"])
    ws.append([1.1010519491231002e17, "社区助老服务", "2025-03-05", "09:00", "10:00"])
    data = io.BytesIO()
    numeric.save(data)
    report = importer.run(w.cid, data.getvalue(), actor_id=w.worker, dry_run=True)
    assert codes(report) == [(2, "证件号码", "BAD_ID_NUMBER")]

    gb = (HEADER + f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,10:00,,,,\n").encode("gb18030")
    assert importer.run(w.cid, gb, actor_id=w.worker, dry_run=True).ready_rows == 1
    missing = importer.run(w.cid, "姓名,日期\n张伟,2025-03-05\n".encode(), actor_id=w.worker, dry_run=True)
    assert [p.code for p in missing.problems] == ["MISSING_COLUMN"] * 4
    for bad in (b"PK\x03\x04not a zip", b"\xff\xfe\x00\x00", b"a,b\n\x00"):
        with pytest.raises(
            LedgerError, check=lambda e: e.code is ErrorCode.INVALID_FIELD and e.field == "file"
        ):
            importer.run(w.cid, bad, actor_id=w.worker, dry_run=True)
    with pytest.raises(LedgerError, check=lambda e: e.code is ErrorCode.COMMUNITY_NOT_FOUND):
        importer.run(10**9, gb, actor_id=w.worker, dry_run=True)
