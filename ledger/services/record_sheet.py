"""Reading a sheet of service hours (CSV or XLSX) into typed rows, with every cell's problems.

The accepted columns (Chinese headers and English aliases) are in ``COLUMNS``; docs/service-records.md
("Bulk import") lists them. A header is matched after NFKC normalisation (full-width brackets and
colons become ASCII) with spaces removed and letters lower-cased; unknown columns are ignored and
reported. Rows are numbered as the spreadsheet numbers them (the header is row 1). A problem names
its row, its column (the header as written in the file) and a code, never the cell's value: the
sheet holds ID numbers and names.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Final

from ledger.domain.errors import ErrorCode, LedgerError

__all__ = [
    "COLUMNS",
    "MAX_ROWS",
    "PROBLEM_MESSAGES_ZH",
    "RowProblem",
    "Sheet",
    "SheetRow",
    "read_sheet",
]

MAX_ROWS: Final = 100_000  # one batch (ledger/services/batch.py MAX_BATCH): one atomic import
MAX_CELL_CHARS: Final = 2000

# field -> accepted headers (normalised spelling; the first is the documented one)
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "id_number": ("证件号码", "身份证号码", "身份证号", "证件号", "id_number"),
    "person_id": ("人员编号", "志愿者编号", "person_id"),
    "name": ("姓名", "name"),
    "activity_id": ("活动编号", "activity_id"),
    "activity": ("活动名称", "活动", "activity"),
    "service_date": ("服务日期", "日期", "service_date"),
    "start_time": ("开始时间", "start_time"),
    "end_time": ("结束时间", "end_time"),
    "hours": ("服务时长(小时)", "服务时长", "时长(小时)", "时长", "hours"),
    "place": ("服务地点", "地点", "place"),
    "content": ("服务内容", "内容", "content"),
    "organising_unit": ("组织单位", "organising_unit"),
    "leader": ("活动负责人", "负责人", "leader"),
}
_BY_HEADER: Final = {h: name for name, headers in COLUMNS.items() for h in headers}
_REQUIRED: Final = (("service_date",), ("start_time",), ("end_time",), ("id_number", "person_id"))
_ACTIVITY: Final = ("activity_id", "activity")

PROBLEM_MESSAGES_ZH: Final[dict[str, str]] = {
    "MISSING_COLUMN": "缺少必需的列",
    "EMPTY_SHEET": "表格中没有数据行",
    "TOO_MANY_ROWS": f"数据行超过 {MAX_ROWS} 行，请分成多个文件导入",
    "MISSING_VALUE": "必填项为空",
    "BAD_DATE": "日期格式不正确（示例：2025-03-07）",
    "BAD_TIME": "时间格式不正确（示例：09:00，须为整分钟）",
    "BAD_NUMBER": "数字格式不正确",
    "BAD_ID": "编号格式不正确",
    "BAD_ID_NUMBER": "证件号码格式不正确（请将该列设为文本格式）",
    "BAD_TEXT": "文本含有无法识别的字符，或超出长度",
    "END_NOT_AFTER_START": "结束时间须晚于开始时间（跨零点请分两行）",
    "HOURS_MISMATCH": "服务时长与起止时间不符",
    "PERSON_NOT_FOUND": "未找到该人员",
    "PERSON_ERASED": "该人员的个人信息已按本人要求删除",
    "PERSON_MISMATCH": "证件号码与人员编号不是同一人",
    "ACTIVITY_NOT_FOUND": "未找到该活动",
    "ACTIVITY_AMBIGUOUS": "有多个同名活动，请填写活动编号",
    "ACTIVITY_MISMATCH": "活动编号与活动名称不符",
    "ORGANISING_UNIT_MISMATCH": "组织单位与活动登记的不一致",
    "DATE_OUTSIDE_ACTIVITY": "服务日期不在活动日期范围内",
    "FUTURE_DATE": "服务日期晚于今天",
    "NO_VERIFIER": "活动未指定负责人账号，或负责人即导入人：导入的记录须由活动负责人核实",
    "RECORDING_OVERDUE": "已超过记录期限；导入不能特批，请逐条录入并申请特批",
    "CALENDAR_NOT_COVERED": "记录期限超出法定节假日历的覆盖年份，暂时无法计算",
    "DUPLICATE_ROW": "与另一行完全重复",
    "OVERLAP": "与另一行同一志愿者的服务时间重叠",
    "OVERLAPS_RECORD": "与已有的志愿服务记录时间重叠",
}


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One problem of one row: its row number, the column (as headed in the file) and a code.
    ``other_row`` names the row a duplicate or overlap clashes with; ``record_id`` an existing record."""

    row: int
    column: str | None
    code: str
    other_row: int | None = None
    record_id: uuid.UUID | None = None

    @property
    def message_zh(self) -> str:
        return PROBLEM_MESSAGES_ZH[self.code]


@dataclass(slots=True)
class SheetRow:
    """One data row, typed; a cell that failed to parse is None and has a problem."""

    row: int
    id_number: str | None = None
    person_id: uuid.UUID | None = None
    activity_id: uuid.UUID | None = None
    activity: str | None = None
    service_date: date | None = None
    start_time: time | None = None
    end_time: time | None = None
    hours: Decimal | None = None
    place: str | None = None
    content: str | None = None
    organising_unit: str | None = None
    problems: list[RowProblem] = field(default_factory=list)


@dataclass(slots=True)
class Sheet:
    rows: list[SheetRow]
    headers: dict[str, str]  # field -> the header as written
    ignored_columns: list[str]  # by column letter: a header row may hold data if the real one is missing
    problems: list[RowProblem]  # of the sheet as a whole (missing columns, no rows, too many)


def read_sheet(data: bytes) -> Sheet:
    """Parse a CSV (UTF-8 with or without BOM, or GB18030) or XLSX file. INVALID_FIELD (field
    ``file``) when it is neither, or cannot be read at all."""
    cells = enumerate(_xlsx_rows(data) if data[:4] == b"PK\x03\x04" else _csv_rows(data), start=1)
    header_row = next(((n, c) for n, c in cells if not _blank_row(c)), None)
    if header_row is None:
        return Sheet([], {}, [], [RowProblem(1, None, "EMPTY_SHEET")])
    header_number, header = header_row
    headers, positions, ignored = _map_header(header)
    sheet = Sheet([], headers, ignored, [])
    for names in (*_REQUIRED, _ACTIVITY):
        if not any(n in positions for n in names):
            sheet.problems.append(RowProblem(header_number, COLUMNS[names[0]][0], "MISSING_COLUMN"))
    parser = _RowParser(positions, headers)
    for number, cells_of_row in cells:
        if _blank_row(cells_of_row):
            continue
        if len(sheet.rows) == MAX_ROWS:
            sheet.problems.append(RowProblem(number, None, "TOO_MANY_ROWS"))
            break
        sheet.rows.append(parser.parse(number, cells_of_row))
    if not sheet.rows:
        sheet.problems.append(RowProblem(header_number + 1, None, "EMPTY_SHEET"))
    return sheet


# ------------------------------------------------------------------------------------- files


def _csv_rows(data: bytes) -> Iterator[Sequence[object]]:
    text = _decode(data)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        yield from reader
    except csv.Error:
        raise LedgerError(ErrorCode.INVALID_FIELD, field="file") from None


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    else:
        encodings = ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" not in text:
            return text
    raise LedgerError(ErrorCode.INVALID_FIELD, field="file")


def _xlsx_rows(data: bytes) -> Iterator[Sequence[object]]:
    from openpyxl import load_workbook  # noqa: PLC0415 - only XLSX imports need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # an uploaded file can fail in any of openpyxl's (and zipfile's) ways
        raise LedgerError(ErrorCode.INVALID_FIELD, field="file") from None
    try:
        sheet = book.worksheets[0]
        for row in sheet.iter_rows(values_only=True):
            yield tuple(row)
    except LedgerError:
        raise
    except Exception:  # as above: a malformed sheet inside a valid zip
        raise LedgerError(ErrorCode.INVALID_FIELD, field="file") from None
    finally:
        book.close()


# ------------------------------------------------------------------------------------ header


def _normal_header(value: object) -> str:
    text = unicodedata.normalize("NFKC", str(value))
    return re.sub(r"\s+", "", text).lower()


def _map_header(header: Sequence[object]) -> tuple[dict[str, str], dict[str, int], list[str]]:
    headers: dict[str, str] = {}
    positions: dict[str, int] = {}
    ignored: list[str] = []
    for i, cell in enumerate(header):
        if _blank(cell) is None:
            continue
        name = _BY_HEADER.get(_normal_header(cell))
        if name is None or name in positions:
            ignored.append(column_letter(i))
            continue
        positions[name] = i
        headers[name] = str(cell).strip()  # one of the accepted headers, as spelled in the file
    return headers, positions, ignored


def column_letter(index: int) -> str:
    """A, B, …, Z, AA, AB, … for the 0-based column index."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


# ------------------------------------------------------------------------------------- cells


def _blank(value: object) -> object | None:
    """The cell's value, or None for an empty cell (blank text included)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _blank_row(cells: Sequence[object]) -> bool:
    return all(_blank(c) is None for c in cells)


# A blank cell's memo entry, and a text not seen before (parsed values are never these objects).
_BLANK: Final = object()
_UNSEEN: Final = object()


class _RowParser:
    """Parses the data rows of one sheet. Text cells are parsed once per distinct text and field: a
    sheet repeats its activities, dates, times, places and volunteers over many rows, and each
    parser is a pure function of the cell. Other cells (XLSX numbers, dates, times) are parsed
    each time: they are cheap to parse, and values that are equal in Python can differ as cells
    (1, 1.0 and True; datetimes in two time zones)."""

    def __init__(self, positions: dict[str, int], headers: dict[str, str]) -> None:
        self._headers = headers
        self._fields: list[tuple[str, int, Callable[[object], object], str, dict[str, object]]] = [
            (name, positions[name], parse, code, {}) for name, parse, code in _PARSERS if name in positions
        ]
        # Each group of required fields (one of them filled in), with the column a missing value
        # is reported in; a group whose columns are all missing is the sheet's problem instead.
        self._required = [
            (names, next(n for n in names if n in positions))
            for names in (*_REQUIRED, _ACTIVITY)
            if any(n in positions for n in names)
        ]

    def parse(self, number: int, cells: Sequence[object]) -> SheetRow:
        row = SheetRow(number)
        size = len(cells)
        filled: set[str] = set()
        for name, index, parse, code, memo in self._fields:
            if index >= size:
                continue
            value = cells[index]
            if type(value) is str:
                parsed = memo.get(value, _UNSEEN)
                if parsed is _UNSEEN:
                    parsed = memo[value] = _BLANK if _blank(value) is None else parse(value)
            else:
                parsed = _BLANK if _blank(value) is None else parse(value)
            if parsed is _BLANK:
                continue
            filled.add(name)
            if parsed is None:
                self._problem(row, name, code)
            else:
                setattr(row, name, parsed)
        for names, column in self._required:
            if filled.isdisjoint(names):
                self._problem(row, column, "MISSING_VALUE")
        self._check_times(row)
        return row

    def _check_times(self, row: SheetRow) -> None:
        start, end = row.start_time, row.end_time
        if start is None or end is None:
            return
        if end <= start:
            self._problem(row, "end_time", "END_NOT_AFTER_START")
        elif row.hours is not None and abs(row.hours * 60 - (_minutes(end) - _minutes(start))) >= 1:
            self._problem(row, "hours", "HOURS_MISMATCH")

    def _problem(self, row: SheetRow, name: str, code: str) -> None:
        row.problems.append(RowProblem(row.row, self._headers.get(name, COLUMNS[name][0]), code))


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def _text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = unicodedata.normalize("NFC", str(value).strip())
    if len(text) > MAX_CELL_CHARS or any(unicodedata.category(ch) == "Cc" for ch in text):
        return None
    return text


def _id_number(value: object) -> str | None:
    # An 18-digit number in a numeric Excel cell has lost its last digits (15 significant digits).
    if isinstance(value, float | bool):
        return None
    text = _text(value)
    return text if text and len(text) <= 40 else None


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value).strip())
    except ValueError:
        return None


_DATE_RE: Final = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def _date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date() if value.time() == time(0) else None
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    text = unicodedata.normalize("NFKC", value).strip()
    match = _DATE_RE.match(text) or re.match(r"^(\d{4})(\d{2})(\d{2})$", text)
    if match is None:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


_TIME_RE: Final = re.compile(r"^(\d{1,2})[:点时](\d{2})(?:[:分](\d{2}))?分?$")


def _time(value: object) -> time | None:
    if isinstance(value, datetime):
        value = value.time()
    if isinstance(value, time):
        ok = value.second == 0 and value.microsecond == 0 and value.tzinfo is None
        return value if ok else None
    if isinstance(value, float) and 0 <= value < 1:  # an Excel time without a time format
        minutes = round(value * 1440)
        return time(minutes // 60, minutes % 60) if minutes < 1440 else None
    if not isinstance(value, str):
        return None
    match = _TIME_RE.match(re.sub(r"\s+", "", unicodedata.normalize("NFKC", value)))
    if match is None or (match[3] is not None and int(match[3]) != 0):
        return None
    hour, minute = int(match[1]), int(match[2])
    return time(hour, minute) if hour < 24 and minute < 60 else None


def _hours(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str | int | float) else None
    except InvalidOperation:
        return None
    return number if number is not None and number.is_finite() and 0 < number <= 24 else None


_PARSERS: Final = (
    ("id_number", _id_number, "BAD_ID_NUMBER"),
    ("person_id", _uuid, "BAD_ID"),
    ("activity_id", _uuid, "BAD_ID"),
    ("activity", _text, "BAD_TEXT"),
    ("service_date", _date, "BAD_DATE"),
    ("start_time", _time, "BAD_TIME"),
    ("end_time", _time, "BAD_TIME"),
    ("hours", _hours, "BAD_NUMBER"),
    ("place", _text, "BAD_TEXT"),
    ("content", _text, "BAD_TEXT"),
    ("organising_unit", _text, "BAD_TEXT"),
)
