"""docs/identity.md's permission matrix is ROLE_PERMISSIONS, row for row and role for role."""

from __future__ import annotations

from pathlib import Path

from ledger.domain.roles import ROLE_PERMISSIONS, Permission, Role

DOC = Path(__file__).resolve().parents[2] / "docs" / "identity.md"
# The matrix's columns, in the order of the role table above it.
COLUMNS = (
    Role.VOLUNTEER,
    Role.SOCIAL_WORKER,
    Role.ACTIVITY_LEADER,
    Role.GRID_WORKER,
    Role.REVIEW_PANEL,
    Role.SHOP_CLERK,
    Role.COMMUNITY_ADMIN,
    Role.REGION_ADMIN,
    Role.AUDITOR,
)


def _documented() -> dict[str, tuple[bool, ...]]:
    rows: dict[str, tuple[bool, ...]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `") or ":" not in line.split("|")[1]:
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].split("`")[1]
        rows[name] = tuple(c == "✓" for c in cells[1:])
    return rows


def test_the_documented_matrix_is_role_permissions() -> None:
    documented = _documented()
    assert list(documented) == [p.value for p in Permission]
    for permission in Permission:
        granted = tuple(permission in ROLE_PERMISSIONS[role] for role in COLUMNS)
        assert documented[permission.value] == granted, permission
