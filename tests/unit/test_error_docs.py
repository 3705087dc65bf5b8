"""docs/reference/errors.md lists every error code, in precedence (enum) order, with its message."""

from __future__ import annotations

import re
from pathlib import Path

from ledger.domain.errors import MESSAGES_ZH, ErrorCode

DOC = Path(__file__).resolve().parents[2] / "docs" / "reference" / "errors.md"


def test_errors_doc_lists_every_code_in_precedence_order() -> None:
    rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \| ([^|]+) \|", DOC.read_text(encoding="utf-8"), re.M)
    assert [code for _, code, _ in rows] == [c.value for c in ErrorCode]
    assert [int(n) for n, _, _ in rows] == list(range(1, len(ErrorCode) + 1))
    assert [msg.strip() for _, _, msg in rows] == [c.message_zh for c in ErrorCode]


def test_every_code_has_a_chinese_message() -> None:
    assert set(MESSAGES_ZH) == set(ErrorCode)
    assert [c.precedence for c in ErrorCode] == list(range(len(ErrorCode)))
