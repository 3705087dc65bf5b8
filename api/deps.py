"""What handlers get injected: the services, the calling principal, and access checks.

The composition root (``vledger.cli``) builds ``Services`` once; handlers name ``services`` and
``principal`` as parameters and Litestar provides them. Authorization is explicit in each handler
(``access.require(...)``), so the route table test can read it against the roles matrix.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.roles import Permission, Principal
from ledger.services.account_reads import AsyncAccountReads
from ledger.services.accounts import Accounts, AccountView
from ledger.services.activities import Activities
from ledger.services.audit_log import AuditLog
from ledger.services.certificates import Certificates
from ledger.services.communities import Communities
from ledger.services.group_commit import GroupCommit
from ledger.services.households import Households
from ledger.services.identity import Identity, LoginLimiter
from ledger.services.ledger import Ledger
from ledger.services.people import People
from ledger.services.record_import import RecordImport
from ledger.services.requests import IdempotentRequests
from ledger.services.rule_settings import RuleSettings
from ledger.services.service_corrections import ServiceCorrections
from ledger.services.service_records import ServiceRecords
from ledger.services.shop import Shop
from ledger.services.shop_reports import ShopReports
from ledger.services.timebank import TimeBank
from ledger.services.timebank_members import TimeBankMembers


@dataclass(frozen=True, slots=True)
class AuditKeys:
    """The verifier keys the service publishes: each log's checkpoint key, and its witnesses'."""

    # (origin, vkey, valid from size, retired at size or None): every key a log has had, so that
    # checkpoints signed before a rotation still verify.
    logs: Callable[[], list[tuple[str, str, int, int | None]]]
    witnesses: Callable[[], list[tuple[str, str]]]  # (name, vkey)


@dataclass(frozen=True, slots=True)
class Services:
    ledger: Ledger
    account_reads: AsyncAccountReads  # the balance route's reads, on the event loop
    transfers: GroupCommit  # single-phase transfers, grouped with concurrent requests' (same outcomes)
    accounts: Accounts
    communities: Communities
    identity: Identity
    people: People
    households: Households
    settings: RuleSettings
    requests: IdempotentRequests
    limiter: LoginLimiter
    audit: AuditLog
    audit_keys: AuditKeys
    activities: Activities
    records: ServiceRecords
    corrections: ServiceCorrections
    record_import: RecordImport
    certificates: Certificates
    timebank: TimeBank  # exchanges
    timebank_members: TimeBankMembers  # relations, hardship flags, gifts, the region switch
    shop: Shop  # points supermarket: catalog, stock, orders, pickup
    shop_reports: ShopReports


def provide_services(state: State) -> Services:
    services: NamedDependency[Services] = state.services
    return services


def bearer_secret(request: Request[object, object, State]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


async def provide_principal(request: Request[object, object, State]) -> Principal:
    """The caller, from ``Authorization: Bearer <token>``; UNAUTHENTICATED (401) otherwise.

    A token seen in the last few seconds is answered from the identity cache on the event loop;
    only a cache miss goes to a worker thread for its database round trip.
    """
    secret = bearer_secret(request)
    services: NamedDependency[Services] = request.app.state.services
    principal = None
    if secret:
        principal = services.identity.cached(secret)
        if principal is None:
            principal = await anyio.to_thread.run_sync(services.identity.resolve, secret)
    if principal is None:
        raise LedgerError(ErrorCode.UNAUTHENTICATED)
    return principal


class Access:
    """Authorization questions a handler asks about one caller."""

    def __init__(self, services: NamedDependency[Services], principal: NamedDependency[Principal]) -> None:
        self._services = services
        self.principal = principal

    @property
    def services(self) -> Services:
        """The services, for hot handlers that take only ``access`` (one dependency batch less)."""
        return self._services

    def region(self, community_id: FromPath[int]) -> int:
        return self._services.identity.region_of(community_id)  # COMMUNITY_NOT_FOUND (404)

    def can(self, permission: Permission, community_id: FromPath[int]) -> bool:
        return self.principal.can(permission, community_id, self.region(community_id))

    def require(self, permission: Permission, community_id: FromPath[int]) -> None:
        if not self.can(permission, community_id):
            raise LedgerError(ErrorCode.FORBIDDEN, permission=str(permission))

    def member_of(self, community_id: FromPath[int]) -> bool:
        """Any role in the community (volunteers included)."""
        return bool(self.principal.roles_in(community_id, self.region(community_id)))

    def owns(self, community_id: FromPath[int], account: AccountView) -> bool:
        """The caller's own account, or their current household's."""
        person = self.principal.person
        if person is None or person.community_id != community_id or account.owner_id is None:
            return False
        if account.owner_kind == "person":
            return account.owner_id == person.person_id
        if account.owner_kind == "household":
            return self._services.households.household_of(community_id, person.person_id) == account.owner_id
        return False

    def as_person(self, community_id: FromPath[int], permission: Permission) -> uuid.UUID:
        """For a caller without ``permission``: their person id if they are a person of this
        community (they may then see their own records, and others' do not exist for them);
        FORBIDDEN for anyone else."""
        person = self.principal.person
        if person is None or person.community_id != community_id or not self.member_of(community_id):
            raise LedgerError(ErrorCode.FORBIDDEN, permission=str(permission))
        return person.person_id

    def account(self, community_id: int, account_id: uuid.UUID, permission: Permission) -> AccountView:
        """An account the caller may read under ``permission`` or as its owner."""
        if self.can(permission, community_id):
            return self._services.accounts.get(community_id, account_id)
        self.as_person(community_id, permission)
        view = self._services.accounts.get(community_id, account_id)
        if self.owns(community_id, view):
            return view
        raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, account_id=str(account_id))

    def allowed_cached(self, permission: Permission, community_id: int) -> bool | None:
        """Whether the caller holds ``permission`` in the community, decided without the database:
        None when the community's region is not cached yet (``can`` then decides)."""
        region = self._services.identity.cached_region(community_id)
        return None if region is None else self.principal.can(permission, community_id, region)

    async def require_async(self, permission: Permission, community_id: int) -> None:
        """``require`` from the event loop: answered without a thread when the community's region
        is cached (it nearly always is); otherwise ``require`` runs on a worker thread."""
        allowed = self.allowed_cached(permission, community_id)
        if allowed is None:
            await anyio.to_thread.run_sync(self.require, permission, community_id)
        elif not allowed:
            raise LedgerError(ErrorCode.FORBIDDEN, permission=str(permission))

    async def account_async(
        self, community_id: int, account_id: uuid.UUID, permission: Permission
    ) -> AccountView:
        """``account`` from the event loop: staff whose permission is known without the database
        read on the asyncio pool; anyone else (a volunteer's ownership check) goes through
        ``account`` on a worker thread."""
        if self.allowed_cached(permission, community_id):
            return await self._services.account_reads.get(community_id, account_id)
        return await anyio.to_thread.run_sync(self.account, community_id, account_id, permission)

    def require_transfer(self, community_id: int, transfer_id: uuid.UUID) -> None:
        """Staff with TRANSFER_READ, or a volunteer whose own (or household's) account the transfer
        touches; other transfers do not exist for a volunteer (TRANSFER_NOT_FOUND)."""
        if self.can(Permission.TRANSFER_READ, community_id):
            return
        self.as_person(community_id, Permission.TRANSFER_READ)
        accounts = self._services.accounts
        touched = accounts.transfer_accounts(community_id, transfer_id)
        if not any(self.owns(community_id, accounts.get(community_id, a)) for a in touched):
            raise LedgerError(ErrorCode.TRANSFER_NOT_FOUND, transfer_id=str(transfer_id))


def provide_access(request: Request[object, object, State], principal: NamedDependency[Principal]) -> Access:
    # The services come from the application state, not as a dependency: with the principal as the
    # only dependency at its level, Litestar resolves it directly instead of in a task group.
    services: NamedDependency[Services] = request.app.state.services
    return Access(services, principal)
