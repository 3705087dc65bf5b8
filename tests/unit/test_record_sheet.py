"""Reading sheets of service hours: headers, encodings, cell formats, problems that never echo values."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.services import record_sheet
from ledger.services.record_sheet import COLUMNS, RowProblem, SheetRow, column_letter, read_sheet

HEADER = "姓名,证件号码,活动名称,服务日期,开始时间,结束时间"


def test_chinese_and_english_headers_map_to_the_same_fields() -> None:
    for header in (
        HEADER,
        "name,id_number,activity,service_date,start_time,end_time",
        "姓 名, 身份证号 ,活动,日期,开始时间,结束时间",
    ):
        sheet = read_sheet(f"{header}\n张三,110105194912310021,助老,2025-03-07,9:00,11:45\n".encode())
        assert sheet.problems == []
        [row] = sheet.rows
        assert (row.id_number, row.activity, row.service_date, row.start_time, row.end_time) == (
            "110105194912310021",
            "助老",
            date(2025, 3, 7),
            time(9, 0),
            time(11, 45),
        )
    assert all(h == h.strip() for headers in COLUMNS.values() for h in headers)


@pytest.mark.parametrize(
    "data",
    [
        ("\ufeff" + HEADER + "\n张三,X,助老,2025-03-07,09:00,10:00\n").encode("utf-8"),
        (HEADER + "\n张三,X,助老,2025-03-07,09:00,10:00\n").encode("utf-8"),
        (HEADER + "\n张三,X,助老,2025-03-07,09:00,10:00\n").encode("gb18030"),
        (HEADER.replace(",", "\t") + "\n张三\tX\t助老\t2025-03-07\t09:00\t10:00\n").encode("utf-8"),
    ],
    ids=["utf-8 bom", "utf-8", "gb18030", "tab separated"],
)
def test_encodings(data: bytes) -> None:
    sheet = read_sheet(data)
    assert sheet.problems == [] and sheet.rows[0].activity == "助老"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-07", date(2025, 3, 7)),
        ("2025/3/7", date(2025, 3, 7)),
        ("2025.03.07", date(2025, 3, 7)),
        ("2025年3月7日", date(2025, 3, 7)),
        ("20250307", date(2025, 3, 7)),
        ("2025-02-30", None),
        ("07/03/2025", None),
        ("明天", None),
    ],
)
def test_dates(text: str, expected: date | None) -> None:
    row = read_sheet(f"{HEADER}\n张三,X,助老,{text},09:00,10:00\n".encode()).rows[0]
    assert row.service_date == expected
    assert [p.code for p in row.problems] == ([] if expected else ["BAD_DATE"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9:00", time(9, 0)),
        ("09:30", time(9, 30)),
        ("09:30:00", time(9, 30)),
        ("９：３０", time(9, 30)),
        ("9点30", time(9, 30)),
        ("09:30:15", None),
        ("24:00", None),
        ("9", None),
    ],
)
def test_times(text: str, expected: time | None) -> None:
    row = read_sheet(f"{HEADER}\n张三,X,助老,2025-03-07,{text},23:00\n".encode()).rows[0]
    assert row.start_time == expected
    assert [p.code for p in row.problems] == ([] if expected else ["BAD_TIME"])


def test_row_problems_name_row_and_column_never_the_value() -> None:
    data = (
        "活动名称,证件号码,服务日期,开始时间,结束时间,服务时长（小时）,备注\n"
        "助老,110105194912310021,2025-03-07,10:00,09:00,1,\n"
        "助老,,2025-03-07,09:00,10:00,abc,\n"
        "\n"
        ",110105194912310021,,09:00,10:00,1,\n"
    ).encode()
    sheet = read_sheet(data)
    found = [(p.row, p.column, p.code) for r in sheet.rows for p in r.problems]
    assert found == [
        (2, "结束时间", "END_NOT_AFTER_START"),
        (3, "服务时长（小时）", "BAD_NUMBER"),
        (3, "证件号码", "MISSING_VALUE"),
        (5, "服务日期", "MISSING_VALUE"),
        (5, "活动名称", "MISSING_VALUE"),
    ]
    assert sheet.ignored_columns == ["G"]
    assert "110105194912310021" not in repr([r.problems for r in sheet.rows])


def test_sheet_problems_missing_columns_and_no_rows() -> None:
    sheet = read_sheet("证件号码,备注\n".encode())
    assert [(p.row, p.column, p.code) for p in sheet.problems] == [
        (1, "服务日期", "MISSING_COLUMN"),
        (1, "开始时间", "MISSING_COLUMN"),
        (1, "结束时间", "MISSING_COLUMN"),
        (1, "活动编号", "MISSING_COLUMN"),
        (2, None, "EMPTY_SHEET"),
    ]
    assert [p.code for p in read_sheet(b"").problems] == ["EMPTY_SHEET"]
    # A header row of data (the real header missing) is not echoed: ignored columns are letters.
    headless = read_sheet("张三,110105194912310021,2025-03-07\n".encode())
    assert headless.ignored_columns == ["A", "B", "C"]


def test_xlsx_cells_keep_their_types() -> None:
    book = Workbook()
    ws = book.active
    assert ws is not None
    person = uuid.uuid4()
    ws.append(["人员编号", "活动名称", "服务日期", "开始时间", "结束时间", "服务时长(小时)", "证件号码"])
    ws.append([str(person), "助老", datetime(2025, 3, 7), time(9, 0), 0.46875, 2.25, 110105194912310021])
    buffer = io.BytesIO()
    book.save(buffer)
    [row] = read_sheet(buffer.getvalue()).rows
    assert (row.person_id, row.service_date, row.start_time, row.end_time, row.hours) == (
        person,
        date(2025, 3, 7),
        time(9, 0),
        time(11, 15),
        Decimal("2.25"),
    )
    # Excel keeps 15 significant digits: an 18-digit number cell has lost its last ones.
    assert (row.id_number, [p.code for p in row.problems]) == (None, ["BAD_ID_NUMBER"])


def test_unreadable_files_are_invalid() -> None:
    for data in (b"PK\x03\x04", b"\xff\xff\xff", b"a\x00b"):
        with pytest.raises(
            LedgerError, check=lambda e: e.code is ErrorCode.INVALID_FIELD and e.field == "file"
        ):
            read_sheet(data)


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 701, 702)] == ["A", "Z", "AA", "ZZ", "AAA"]


# ------------------------------------------------------------ the row parser against the plain one


def _plain_row(
    number: int, cells: tuple[object, ...], positions: dict[str, int], headers: dict[str, str]
) -> SheetRow:
    """Every cell parsed on its own, as the sheet reader did before it remembered parsed texts."""
    row = SheetRow(number)

    def cell(name: str) -> object | None:
        i = positions.get(name)
        return None if i is None or i >= len(cells) else record_sheet._blank(cells[i])

    def problem(name: str, code: str) -> None:
        row.problems.append(RowProblem(number, headers.get(name, COLUMNS[name][0]), code))

    for name, parse, code in record_sheet._PARSERS:
        value = cell(name)
        if value is None:
            continue
        parsed = parse(value)
        if parsed is None:
            problem(name, code)
        else:
            setattr(row, name, parsed)
    for names in (*record_sheet._REQUIRED, record_sheet._ACTIVITY):
        if all(cell(n) is None for n in names) and any(n in positions for n in names):
            problem(next(n for n in names if n in positions), "MISSING_VALUE")
    if row.start_time is not None and row.end_time is not None and row.end_time <= row.start_time:
        problem("end_time", "END_NOT_AFTER_START")
    elif row.hours is not None and row.start_time is not None and row.end_time is not None:
        served = (
            row.end_time.hour * 60 + row.end_time.minute - row.start_time.hour * 60 - row.start_time.minute
        )
        if abs(row.hours * 60 - served) >= 1:
            problem("hours", "HOURS_MISMATCH")
    return row


# Cell texts by field, good and bad, few enough that rows repeat them (as real sheets do).
_TEXTS = {
    "id_number": ["110105194912310021", "32010219800101123X", " 32010219800101123X ", "", "x" * 41, "a\x07b"],
    "person_id": [str(uuid.UUID(int=7)), "not-an-id", "", " "],
    "activity_id": [str(uuid.UUID(int=9)), "{bad}", ""],
    "activity": ["助老", "社区助老服务", " 助老 ", "", "a\tb", "e\u0301"],
    "service_date": ["2025-03-07", "2025/3/7", "2025年3月7日", "20250307", "2025-02-30", "明天", ""],
    "start_time": ["9:00", "09:30", "９：３０", "9点30", "09:30:15", "24:00", ""],
    "end_time": ["10:00", "11:45", "09:00", "23:59", "9", ""],
    "hours": ["1", "1.5", "2.75", "abc", "0", "25", "NaN", ""],
    "place": ["活动中心", "", "楼道\\北"],
    "content": ["陪伴老人", "", "x" * 2001],
    "organising_unit": ["居委会", ""],
}
# Cells as an XLSX sheet holds them: numbers, dates and times keep their types.
_CELLS: list[object] = [
    None,
    True,
    0,
    1,
    1.0,
    1.5,
    0.375,
    110105194912310021,
    1.1010519491231002e17,
    datetime(2025, 3, 7),
    datetime(2025, 3, 7, 9, 30),
    date(2025, 3, 7),
    time(9, 0),
    time(9, 0, 15),
]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(sorted(_TEXTS)), min_size=1, max_size=len(_TEXTS), unique=True),
    st.data(),
)
def test_rows_parse_as_cell_by_cell(fields: list[str], data: st.DataObject) -> None:
    """The same rows, problems and order as parsing every cell on its own, on CSV sheets that
    repeat texts, leave cells or whole columns out, and have short rows."""
    header = [COLUMNS[f][0] for f in fields]
    lines = [",".join(header)]
    for _ in range(data.draw(st.integers(1, 30))):
        width = data.draw(st.integers(1, len(fields)))
        lines.append(",".join(f'"{data.draw(st.sampled_from(_TEXTS[f]))}"' for f in fields[:width]))
    text = "\n".join(lines) + "\n"
    sheet = read_sheet(text.encode())
    headers, positions, _ = record_sheet._map_header(header)
    cells = [next(csv.reader([line])) for line in lines[1:]]
    expected = [
        _plain_row(n, tuple(c), positions, headers)
        for n, c in enumerate(cells, start=2)
        if not record_sheet._blank_row(c)
    ]
    assert sheet.rows == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from([*_CELLS, "2025-03-07", "9:00", "10:30", "助老", ""]), max_size=11)))
def test_typed_cells_parse_as_cell_by_cell(rows: list[list[object]]) -> None:
    """XLSX cells of every type, through one parser (so texts are remembered across rows)."""
    header = [COLUMNS[name][0] for name, _, _ in record_sheet._PARSERS]
    headers, positions, _ = record_sheet._map_header(header)
    parser = record_sheet._RowParser(positions, headers)
    for n, cells in enumerate(rows, start=2):
        assert parser.parse(n, cells) == _plain_row(n, tuple(cells), positions, headers)
