"""Bulk import of service records on real PostgreSQL: the dry run's row report, atomic posting
through the batch path, the credit rules of single records, importing twice, refusals."""

from __future__ import annotations

import io
import time as time_module
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime, time

import psycopg
import pytest
from openpyxl import Workbook
from psycopg_pool import ConnectionPool
from service_world import HOUR, World, make_world  # this directory is on sys.path (rootdir-less tests)

from ledger.domain.accounts import AccountFlags, AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
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
from vledger import bench_import

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
    ids = [e.event_id for e in events]
    assert ids == sorted(ids) and all(i.version == 7 for i in ids)
    count = "SELECT count(*) FROM service_record_event WHERE community_id = %s"
    assert w.owner.execute(count, (w.cid,)).fetchone() == (4 * 3,)

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

    def failing(conn: Conn, requests: list[TransferRequest], *, clock: object, before: object) -> object:
        bogus = Posting(uuid.uuid4(), Unit.POINTS, 1), Posting(uuid.uuid4(), Unit.POINTS, -1)
        bad = [*requests, TransferRequest(w.cid, "award", bogus, "bogus")]
        return real(conn, bad, clock=clock, before=before)  # type: ignore[arg-type]

    monkeypatch.setattr(batch, "write_batch", failing)
    sheet = csv(f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,11:00,,,,")
    with pytest.raises(LedgerError, check=lambda e: e.code is ErrorCode.ACCOUNT_NOT_FOUND):
        importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False)
    assert records_of(w) == []
    assert w.owner.execute("SELECT count(*) FROM account WHERE owner_id = %s", (a,)).fetchone() == (0,)
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


def test_what_is_written_reads_back_as_written(w: World, people: People, importer: RecordImport) -> None:
    """Texts with backslashes, quotes and full-width characters; a row that credits nothing (no
    transfer); the posted event's detail; the same values a record posted alone would hold."""
    a = register(w, people, ID_A)
    act = w.activity()
    place, content = 'C:\\楼道 "二层"', "陪伴老人，打扫卫生（周三）"
    quoted = '"' + place.replace('"', '""') + '"'  # as a spreadsheet writes it
    sheet = csv(
        f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,11:45,{quoted},{content},,",
        f"张伟,{ID_A},社区助老服务,2025-03-06,09:00,09:20,,,,",  # 20 minutes: rounded down to nothing
    )
    report = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False)
    assert (report.committed, report.ready_rows, report.transfers) == (True, 2, 1)
    first, empty = (w.records.get(w.cid, r[0]) for r in records_of(w))  # type: ignore[arg-type]
    assert (first.place, first.content, first.served_minutes, first.deadline) == (
        place,
        content,
        165,
        date(2025, 3, 21),
    )
    assert (empty.place, empty.content) == (act.place, act.content)
    assert (empty.state, empty.transfer_id, empty.credited_minutes, empty.settings_version) == (
        "posted",
        None,
        0,
        0,
    )
    assert (first.created_by, first.submitted_by, first.verified_by, first.posted_by) == (
        w.worker,
        w.worker,
        w.leader,
        w.worker,
    )
    assert first.created_at == first.submitted_at == first.verified_at == first.posted_at == w.clock()
    assert not first.overdue and first.transfer_id is not None
    for record, row in ((first, 2), (empty, 3)):
        events = w.records.history(w.cid, record.record_id)
        assert [e.at for e in events] == [w.clock()] * 4
        assert events[3].detail == {
            "transfer_id": None if record.transfer_id is None else str(record.transfer_id),
            "settings_version": 0,
            "credited_minutes": record.credited_minutes,
            "credited_points": record.credited_points,
            "credited_coin_minutes": record.credited_coin_minutes,
            "pool_coin_minutes": record.pool_coin_minutes,
            "overdue": False,
            "source": "import",
            "row": row,
        }
    assert [k for (_, _, k) in w.transfers_for(first.record_id)] == [f"service-record:{first.record_id}"]
    assert w.transfers_for(empty.record_id) == [] and w.balance(a, Unit.SERVICE_MINUTES) == 150


def test_a_sheet_that_credits_nothing_posts_its_records_and_events(
    w: World, people: People, importer: RecordImport
) -> None:
    """No row credits anything (each rounds down to nothing): no batch, but the records and their
    four events each."""
    register(w, people, ID_A)
    w.activity()
    sheet = csv(
        f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,09:20,,,,",
        f"张伟,{ID_A},社区助老服务,2025-03-06,09:00,09:20,,,,",
    )
    report = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False)
    assert (report.committed, report.ready_rows, report.transfers, report.postings) == (True, 2, 0, 0)
    for row, (record_id, *_) in enumerate(records_of(w), start=2):
        events = w.records.history(w.cid, record_id)  # type: ignore[arg-type]
        assert [(e.kind, e.actor_id) for e in events] == [
            ("created", w.worker),
            ("submitted", w.worker),
            ("verified", w.leader),
            ("posted", w.worker),
        ]
        assert events[0].detail == {"source": "import", "row": row}
        assert events[3].detail["transfer_id"] is None and events[3].detail["row"] == row


def test_a_refused_real_run_reports_as_the_dry_run_and_opens_nothing(
    w: World, people: People, importer: RecordImport
) -> None:
    a = register(w, people, ID_A)
    w.activity()
    sheet = csv(
        f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,11:45,,,,",
        f"张伟,{ID_A},社区助老服务,2025-03-05,11:00,12:00,,,,",
        f"张伟,{ID_A},社区助老服务,2025-03-06,9点,10:00,,,,",
    )
    dry = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=True)
    real = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False)
    assert real.problems == dry.problems and codes(real) == [
        (3, "开始时间", "OVERLAP"),
        (4, "开始时间", "BAD_TIME"),
    ]
    assert (real.committed, real.ready_rows, real.credited_minutes) == (
        False,
        dry.ready_rows,
        dry.credited_minutes,
    )
    assert records_of(w) == []
    assert w.owner.execute("SELECT count(*) FROM account WHERE owner_id = %s", (a,)).fetchone() == (0,)


def test_existing_accounts_and_their_coins_count(w: World, people: People, importer: RecordImport) -> None:
    """A volunteer with a coin account only (and coins in it): the import opens the two others,
    and the storage cap counts the coins, in the dry run as in the import."""
    a = register(w, people, ID_A)
    w.activity()
    spec = AccountSpec(
        OwnerKind.PERSON, Unit.COIN_MINUTES, member_account_flags(Unit.COIN_MINUTES), owner_id=a
    )
    coins = w.communities.open_account(w.cid, spec)
    issuance = w.system(SystemAccount.ISSUANCE, Unit.COIN_MINUTES)
    postings = (
        Posting(issuance, Unit.COIN_MINUTES, -1498 * HOUR),
        Posting(coins, Unit.COIN_MINUTES, 1498 * HOUR),
    )
    w.ledger.transfer(TransferRequest(w.cid, "award", postings, "award-coins"))
    sheet = csv(f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,12:00,,,,")
    dry = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=True)
    real = importer.run(w.cid, sheet, actor_id=w.worker, dry_run=False)
    for report in (dry, real):
        assert (report.credited_coin_minutes, report.pool_coin_minutes) == (120, 60)
    mine = w.owner.execute(
        "SELECT unit, account_id FROM account WHERE community_id = %s AND owner_id = %s", (w.cid, a)
    ).fetchall()
    assert sorted(u for u, _ in mine) == ["coin_minutes", "points", "service_minutes"]
    assert dict(mine)["coin_minutes"] == coins and w.balance(a, Unit.COIN_MINUTES) == 1500 * HOUR
    buckets = w.owner.execute(
        "SELECT count(*) FROM balance WHERE community_id = %s AND account_id = ANY(%s)",
        (w.cid, [account for _, account in mine]),
    ).fetchone()
    assert buckets == (3,)


def test_an_account_opened_meanwhile_is_kept(
    w: World, people: People, importer: RecordImport, db_url: str
) -> None:
    """Another transaction opens a volunteer's hours account while the import runs: the import
    waits for it and keeps that account."""
    a = register(w, people, ID_A)
    w.activity()
    theirs = uuid7()
    with psycopg.connect(db_url) as other:
        other.execute(
            "INSERT INTO account (community_id, account_id, owner_kind, owner_id, unit, flags) VALUES"
            " (%s, %s, 'person', %s, 'service_minutes', %s)",
            (w.cid, theirs, a, int(member_account_flags(Unit.SERVICE_MINUTES))),
        )
        other.execute(
            "INSERT INTO balance (community_id, account_id, bucket, floor) VALUES (%s, %s, 0, 0)",
            (w.cid, theirs),
        )
        sheet = csv(f"张伟,{ID_A},社区助老服务,2025-03-05,09:00,11:45,,,,")
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(importer.run, w.cid, sheet, actor_id=w.worker, dry_run=False)
            time_module.sleep(0.5)
            assert not running.done()  # waiting for the other transaction's account
            other.commit()
            report = running.result(timeout=30)
    assert (report.committed, report.transfers) == (True, 1)
    mine = w.owner.execute(
        "SELECT unit, account_id FROM account WHERE community_id = %s AND owner_id = %s", (w.cid, a)
    ).fetchall()
    assert len(mine) == 3 and dict(mine)["service_minutes"] == theirs
    assert w.balance(a, Unit.SERVICE_MINUTES) == 150


def test_two_imports_of_one_sheet_at_once_post_it_once(
    w: World, people: People, importer: RecordImport
) -> None:
    ids = [bench_import.id_number(i) for i in range(3)]
    persons = [register(w, people, n, f"志愿者{i}") for i, n in enumerate(ids)]
    w.activity()
    sheet = csv(
        *(
            f"志愿者{i},{n},社区助老服务,2025-03-0{d},09:00,11:45,,,,"
            for i, n in enumerate(ids)
            for d in (3, 4, 5)
        )
    )
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(importer.run, w.cid, sheet, actor_id=w.worker, dry_run=False) for _ in range(2)]
        reports = sorted((f.result(timeout=60) for f in runs), key=lambda r: r.transfers)
    assert [(r.committed, r.transfers, r.already_imported_rows) for r in reports] == [
        (True, 0, 9),
        (True, 9, 0),
    ]
    assert len(records_of(w)) == 9
    assert [w.balance(p, Unit.SERVICE_MINUTES) for p in persons] == [450] * 3


def test_open_missing_matches_opening_one_by_one(w: World, pool: ConnectionPool[Conn]) -> None:
    """The set-based opening gives each account the balance rows open_account gives it (buckets of
    a hot account, the floor of a non-negative one), and leaves existing accounts alone."""
    a, b = w.person(), w.person()
    kept = w.communities.open_account(
        w.cid, AccountSpec(OwnerKind.PERSON, Unit.POINTS, member_account_flags(Unit.POINTS), owner_id=a)
    )
    specs = [
        AccountSpec(OwnerKind.PERSON, Unit.POINTS, member_account_flags(Unit.POINTS), owner_id=a),
        AccountSpec(OwnerKind.PERSON, Unit.COIN_MINUTES, AccountFlags.HOT, owner_id=a),
        AccountSpec(
            OwnerKind.PERSON, Unit.SERVICE_MINUTES, AccountFlags.NON_NEGATIVE, owner_id=b, credit_limit=5
        ),
    ]
    with pool.connection() as conn:
        w.communities.open_missing(conn, w.cid, specs)
    c = w.person()
    for spec in specs:
        w.communities.open_account(w.cid, replace(spec, owner_id=c))

    def shape(owner: uuid.UUID) -> list[tuple[object, ...]]:
        return w.owner.execute(
            "SELECT a.unit, a.flags, a.credit_limit, a.buckets, count(*), min(b.floor), max(b.floor)"
            " FROM account a JOIN balance b USING (community_id, account_id)"
            " WHERE a.community_id = %s AND a.owner_id = %s GROUP BY 1, 2, 3, 4 ORDER BY 1",
            (w.cid, owner),
        ).fetchall()

    assert shape(a) + shape(b) == shape(c)
    mine = w.owner.execute(
        "SELECT account_id FROM account WHERE community_id = %s AND owner_id = %s AND unit = 'points'",
        (w.cid, a),
    ).fetchall()
    assert mine == [(kept,)]
