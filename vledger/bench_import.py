"""The benchmark behind ``vledger bench-import``: build volunteers and a sheet, time dry run and import.

Works in a fresh community of the database it is given (already migrated; the URL is the owner's).
It registers ``people`` volunteers through the people service (encrypted profiles, blind-indexed ID
numbers), writes a CSV sheet of ``rows`` service records (Chinese headers, ID numbers, no
overlaps) for one activity, and times through ``RecordImport`` (ledger/services/record_import.py):

* the dry run (read, resolve, check every row, plan every credit; writes nothing);
* the real import (the same checks under the import lock, accounts, records, events and the
  ledger batch with its chain, one transaction);
* importing the same sheet again (finds every record; posts nothing).

Throughput is postings per second (the design target for bulk import: ≥ 50k postings/s, chain
included), overall and for the batch stage alone. The services' clock is fixed at 2025-03-10 so
the sheet's dates are within their recording deadline. docs/service-records.md keeps the latest table.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from psycopg_pool import ConnectionPool
from rich.console import Console
from rich.table import Table

from ledger.config import get_settings
from ledger.domain.people import PersonProfile
from ledger.domain.service_credit import CHINA_TZ
from ledger.domain.service_records import ActivityFields
from ledger.privacy.keyring import Keyring
from ledger.services.activities import Activities
from ledger.services.communities import Communities
from ledger.services.identity import Identity
from ledger.services.people import People
from ledger.services.record_import import ImportReport, RecordImport
from ledger.store.db import Conn, open_pool

TARGET_POSTINGS_PER_S = 50_000
TODAY = datetime(2025, 3, 10, 12, tzinfo=CHINA_TZ)
FIRST_DAY, LAST_DAY = date(2025, 2, 10), date(2025, 3, 7)  # due 2025-03-21 on the official calendar
SLOTS = (("08:00", "09:30"), ("10:00", "11:45"), ("13:00", "15:00"), ("15:30", "17:00"))
HEADER = "姓名,证件号码,活动名称,服务日期,开始时间,结束时间,服务地点,服务内容"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(i: int) -> str:
    """A well-formed resident ID number (GB 11643 check digit), distinct for each ``i`` < 36.5M."""
    born = date(1950, 1, 1) + timedelta(days=i // 1000)
    body = f"110105{born:%Y%m%d}{i % 1000:03d}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, _WEIGHTS, strict=True)) % 11]
    return body + check


def sheet(ids: list[str], rows: int, activity: str) -> bytes:
    """``rows`` lines, round-robin over the volunteers: each one's k-th row is slot k % 4 of day k // 4."""
    days = (LAST_DAY - FIRST_DAY).days + 1
    if rows > len(ids) * days * len(SLOTS):
        raise ValueError("more rows than the volunteers have free slots in the activity")
    lines = [HEADER]
    for n in range(rows):
        person, k = n % len(ids), n // len(ids)
        day = FIRST_DAY + timedelta(days=k // len(SLOTS))
        start, end = SLOTS[k % len(SLOTS)]
        lines.append(
            f"志愿者{person},{ids[person]},{activity},{day.isoformat()},{start},{end},活动中心,陪伴老人"
        )
    return ("\ufeff" + "\n".join(lines) + "\n").encode()


def run(
    db_url: str, *, people: int = 2000, rows: int = 20000, out: Callable[..., object] = print
) -> list[dict[str, object]]:
    """Build the data set, time the three runs, print (through ``out``) and return the table rows."""
    if people < 1 or rows < 1:
        raise ValueError("people and rows must be at least 1")
    pool = open_pool(
        db_url, app_url=get_settings().app_database_url, min_size=2, max_size=4, name="bench-import"
    )
    try:
        return _run(pool, people, rows, out)
    finally:
        pool.close()


def _run(
    pool: ConnectionPool[Conn], people: int, rows: int, out: Callable[..., object]
) -> list[dict[str, object]]:
    tag = uuid.uuid4().hex[:8]
    communities = Communities(pool, origin_prefix="bench.vledger", hot_buckets=8)
    region = communities.create_region(f"bi-{tag}", "基准街道")
    community_id = communities.create_community(region, f"bi-{tag}", "基准社区").community_id
    identity = Identity(pool)
    worker = identity.create_user(f"bench-worker-{tag}", None)
    leader = identity.create_user(f"bench-leader-{tag}", None)
    registry = People(pool, Keyring.generate())
    logging.getLogger("vledger.people").setLevel(logging.WARNING)  # a line per volunteer otherwise
    started = time.perf_counter()
    ids = [id_number(i) for i in range(people)]
    for n, number in enumerate(ids):
        profile = PersonProfile(name=f"志愿者{n}", id_number=number)
        registry.create(
            community_id, profile, consent_entry=True, consent_publish=False, entered_by_self=False
        )
    setup_s = time.perf_counter() - started
    fields = ActivityFields("社区助老服务", FIRST_DAY, LAST_DAY, "活动中心", "陪伴老人", "基准社区居委会")
    Activities(pool).create(community_id, fields, leader_user_id=leader, actor_id=worker)
    data = sheet(ids, rows, fields.name)
    importer = RecordImport(pool, registry, communities, clock=lambda: TODAY.astimezone(UTC))

    results: list[tuple[str, ImportReport, float]] = []
    for name, dry_run in (("dry run", True), ("import", False), ("import again", False)):
        mark = time.perf_counter()
        report = importer.run(community_id, data, actor_id=worker, dry_run=dry_run)
        results.append((name, report, time.perf_counter() - mark))
        if report.problems:
            raise RuntimeError(f"the benchmark sheet has problems: {report.problems[:3]}")
    imported = results[1][1]
    postings = imported.postings
    # The dry run checks (and plans) the postings the import writes; the second import writes none.
    table = [
        _row(name, rows, report.postings or postings * dry, seconds)
        for (name, report, seconds), dry in zip(results, (1, 1, 0), strict=True)
    ]
    table.append(_row("batch stage of the import", rows, postings, imported.seconds.get("batch", 0.0)))
    _print(table, people, rows, len(data), setup_s, imported, out)
    return table


def _row(name: str, rows: int, postings: int, seconds: float) -> dict[str, object]:
    per_s = postings / seconds if seconds else 0.0
    return {
        "workload": name,
        "rows": rows,
        "postings": postings,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds) if seconds else 0,
        "postings_per_s": round(per_s),
        "ratio": round(per_s / TARGET_POSTINGS_PER_S, 2),
    }


def _print(
    table: list[dict[str, object]],
    people: int,
    rows: int,
    size: int,
    setup_s: float,
    imported: ImportReport,
    out: Callable[..., object],
) -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    grid = Table(title=f"bulk import: {rows} rows, {people} volunteers, CSV {size / 1e6:.1f} MB")
    for key in ("workload", "rows/s", "postings", "seconds", "postings/s", "target", "ratio"):
        grid.add_column(key, justify="left" if key == "workload" else "right")
    for r in table:
        grid.add_row(
            str(r["workload"]),
            f"{r['rows_per_s']:,}",
            f"{r['postings']:,}",
            f"{r['seconds']:.3f}",
            f"{r['postings_per_s']:,}",
            f"{TARGET_POSTINGS_PER_S:,}",
            f"{r['ratio']:.2f}",
        )
    console.print(grid)
    stages = ", ".join(f"{k} {v:.3f} s" for k, v in imported.seconds.items())
    console.print(f"import stages: {stages}")
    console.print(f"set-up (registering {people} volunteers through the people service): {setup_s:.1f} s")
    out(console.export_text())
