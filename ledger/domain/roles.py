"""Roles, what each may do, and the principal a request acts as (pure: no storage, no HTTP).

A role is granted to a user for one community or for a whole region (all its communities). A
route names the permission it needs; ``Principal.can`` answers for a community. Volunteers act on
their own records only: routes check ``Principal.person`` for that, not a permission.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    VOLUNTEER = "volunteer"  # 志愿者
    SOCIAL_WORKER = "social_worker"  # 社工
    ACTIVITY_LEADER = "activity_leader"  # 活动负责人
    GRID_WORKER = "grid_worker"  # 网格员
    REVIEW_PANEL = "review_panel"  # 评议小组
    SHOP_CLERK = "shop_clerk"  # 积分超市 / 网点
    COMMUNITY_ADMIN = "community_admin"  # 村/居委会
    REGION_ADMIN = "region_admin"  # 街道/乡镇
    AUDITOR = "auditor"  # 审计: reads everything it is granted, writes nothing


ROLE_NAMES_ZH: dict[Role, str] = {
    Role.VOLUNTEER: "志愿者",
    Role.SOCIAL_WORKER: "社工",
    Role.ACTIVITY_LEADER: "活动负责人",
    Role.GRID_WORKER: "网格员",
    Role.REVIEW_PANEL: "评议小组",
    Role.SHOP_CLERK: "积分超市店员",
    Role.COMMUNITY_ADMIN: "社区管理员",
    Role.REGION_ADMIN: "街道管理员",
    Role.AUDITOR: "审计员",
}


class Permission(StrEnum):
    COMMUNITY_READ = "community:read"
    ACCOUNT_READ = "account:read"  # any account of the community (own accounts need no permission)
    ACCOUNT_OPEN = "account:open"
    TRANSFER_READ = "transfer:read"
    TRANSFER_POST = "transfer:post"  # manual awards and adjustments
    STATEMENT_EXPORT = "statement:export"
    PERSON_READ = "person:read"  # masked ID and phone numbers
    PERSON_READ_FULL = "person:read_full"  # unmasked
    PERSON_WRITE = "person:write"
    PERSON_ERASE = "person:erase"
    HOUSEHOLD_READ = "household:read"
    HOUSEHOLD_WRITE = "household:write"
    SETTINGS_READ = "settings:read"
    SETTINGS_WRITE = "settings:write"
    USER_MANAGE = "user:manage"  # users, role grants and API tokens within the grant's scope
    LOG_ENTRIES_READ = "log:entries"  # raw audit-log leaves (GET /audit/v1/logs/{id}/entries)
    ACTIVITY_WRITE = "activity:write"  # create and edit activities
    RECORD_READ = "record:read"  # any service record of the community (own records need none)
    RECORD_WRITE = "record:write"  # record, submit and import service records (the recording side)
    RECORD_VERIFY = "record:verify"  # verify or reject submitted records (never one's own)
    RECORD_OVERRIDE = "record:override"  # allow a record past its recording deadline (flagged OVERDUE)
    CORRECTION_DECIDE = "correction:decide"  # accept or reject volunteers' correction requests
    CERTIFICATE_ISSUE = "certificate:issue"  # issue certificates for any volunteer of the community
    TIMEBANK_MANAGE = "timebank:manage"  # match exchanges, resolve disputes, relations, hardship flags
    SHOP_CATALOG = "shop:catalog"  # points supermarket: items, prices, limits, restock and write-off
    SHOP_FULFIL = "shop:fulfil"  # hand over orders by pickup code; see every order of the community
    SHOP_REPORT = "shop:report"  # redemption, stock and funding reports and their exports


_READS = frozenset(
    {
        Permission.COMMUNITY_READ,
        Permission.ACCOUNT_READ,
        Permission.TRANSFER_READ,
        Permission.PERSON_READ,
        Permission.HOUSEHOLD_READ,
        Permission.SETTINGS_READ,
        Permission.RECORD_READ,
    }
)
_ADMIN = frozenset(Permission)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VOLUNTEER: frozenset({Permission.COMMUNITY_READ}),
    Role.SOCIAL_WORKER: _READS
    | {
        Permission.ACCOUNT_OPEN,
        Permission.PERSON_WRITE,
        Permission.STATEMENT_EXPORT,
        Permission.ACTIVITY_WRITE,
        Permission.RECORD_WRITE,
        Permission.CORRECTION_DECIDE,
        Permission.CERTIFICATE_ISSUE,
        Permission.TIMEBANK_MANAGE,
    },
    Role.ACTIVITY_LEADER: (_READS - {Permission.HOUSEHOLD_READ}) | {Permission.RECORD_VERIFY},
    Role.GRID_WORKER: _READS | {Permission.PERSON_WRITE, Permission.HOUSEHOLD_WRITE},
    Role.REVIEW_PANEL: frozenset(
        {
            Permission.COMMUNITY_READ,
            Permission.HOUSEHOLD_READ,
            Permission.PERSON_READ,
            Permission.SETTINGS_READ,
        }
    ),
    Role.SHOP_CLERK: frozenset(
        {Permission.COMMUNITY_READ, Permission.SETTINGS_READ, Permission.SHOP_FULFIL, Permission.SHOP_REPORT}
    ),
    Role.COMMUNITY_ADMIN: _ADMIN,
    Role.REGION_ADMIN: _ADMIN,
    Role.AUDITOR: _READS | {Permission.STATEMENT_EXPORT, Permission.LOG_ENTRIES_READ, Permission.SHOP_REPORT},
}


@dataclass(frozen=True, slots=True)
class Grant:
    """A role in one community, or in every community of one region."""

    role: Role
    community_id: int | None = None
    region_id: int | None = None

    def __post_init__(self) -> None:
        if (self.community_id is None) == (self.region_id is None):
            raise ValueError("a grant names exactly one community or one region")

    def covers(self, community_id: int, region_id: int) -> bool:
        return self.community_id == community_id or self.region_id == region_id


@dataclass(frozen=True, slots=True)
class PersonRef:
    community_id: int
    person_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a user with grants, and the person they are (volunteers)."""

    user_id: uuid.UUID
    username: str
    grants: tuple[Grant, ...] = ()
    person: PersonRef | None = None

    def roles_in(self, community_id: int, region_id: int) -> frozenset[Role]:
        return frozenset(g.role for g in self.grants if g.covers(community_id, region_id))

    def can(self, permission: Permission, community_id: int, region_id: int) -> bool:
        return any(
            permission in ROLE_PERMISSIONS[g.role] for g in self.grants if g.covers(community_id, region_id)
        )

    def is_person(self, community_id: int, person_id: uuid.UUID) -> bool:
        return self.person == PersonRef(community_id, person_id)

    def may_grant(self, grant: Grant, region_of_community: int | None) -> bool:
        """Admins grant within their scope; only a region's admins grant region-wide roles."""
        for g in self.grants:
            if Permission.USER_MANAGE not in ROLE_PERMISSIONS[g.role]:
                continue
            if grant.region_id is not None and g.region_id == grant.region_id:
                return True
            if grant.community_id is not None and (
                g.community_id == grant.community_id
                or (g.region_id is not None and g.region_id == region_of_community)
            ):
                return grant.role != Role.REGION_ADMIN
        return False
