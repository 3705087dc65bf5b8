"""Statement and report exports as CSV (UTF-8 with BOM, so that Excel opens Chinese headers) and XLSX."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from openpyxl import Workbook

from ledger.services.accounts import StatementLine

BEIJING = timezone(timedelta(hours=8))
HEADERS = ("转账编号", "序号", "业务类型", "阶段", "发生时间", "记账时间", "变动", "变动后余额", "到期时间")


def _time(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _row(line: StatementLine) -> tuple[object, ...]:
    return (
        str(line.transfer_id),
        line.seq,
        line.kind,
        line.phase,
        _time(line.effective_at),
        _time(line.recorded_at),
        line.amount,
        "" if line.balance_after is None else line.balance_after,
        _time(line.expires_at),
    )


def to_csv(lines: Iterable[StatementLine]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADERS)
    for line in lines:
        writer.writerow(_row(line))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(lines: Iterable[StatementLine], *, title: str) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])
    sheet.append(list(HEADERS))
    for line in lines:
        sheet.append(list(_row(line)))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def table_to_csv(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> bytes:
    """Any report table as CSV (UTF-8 with BOM, CRLF), like the statement export."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(list(headers))
    writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def table_to_xlsx(headers: Iterable[str], rows: Iterable[Iterable[object]], *, title: str) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=title[:31])
    sheet.append(list(headers))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
