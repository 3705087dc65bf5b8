"""Households (户): membership over time, the head, split and merge, and an append-only event trail."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from uuid import UUID

from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.households import bad as _bad
from ledger.domain.households import check_code as _check_code
from ledger.domain.households import check_ids as _check_ids
from ledger.domain.households import check_instant as _check_instant
from ledger.domain.households import check_label as _check_label
from ledger.domain.ids import uuid7
from ledger.store import households_repo as repo
from ledger.store.db import Conn
from ledger.store.households_repo import (
    EventKind,
    HouseholdEventView,
    HouseholdRow,
    HouseholdView,
    MembershipChange,
    MemberView,
)

__all__ = ["EventKind", "HouseholdEventView", "HouseholdView", "Households", "MemberView"]

MAX_PAGE = 500
_MOVE_ATTEMPTS = 5


def _member_of(members: Sequence[MemberView], person_id: UUID, household_id: UUID) -> MemberView:
    for row in members:
        if row.person_id == person_id:
            return row
    raise LedgerError(ErrorCode.NOT_IN_HOUSEHOLD, person_id=str(person_id), household_id=str(household_id))


def _head_of(members: Sequence[MemberView]) -> MemberView | None:
    return next((m for m in members if m.is_head), None)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Households:
    """Household changes and reads for one pool; each change is one transaction that commits itself."""

    def __init__(self, pool: ConnectionPool[Conn], *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._pool = pool
        self._clock = clock

    @contextmanager
    def _tx(self) -> Iterator[Conn]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._pool.connection() as conn, repo.violations_mapped():
            yield conn

    def _change(self, community_id: int, actor_id: UUID | None) -> MembershipChange:
        return MembershipChange(community_id, self._clock, actor_id)

    def _load(
        self,
        conn: Conn,
        community_id: int,
        household_ids: Sequence[UUID],
        person_ids: Sequence[UUID],
        *,
        adding: bool,
    ) -> dict[UUID, HouseholdRow]:
        """Lock the households and check everything exists, reporting faults in ErrorCode order."""
        people = repo.persons(conn, community_id, person_ids)
        households = repo.lock_households(conn, community_id, household_ids)
        for person_id in person_ids:
            if person_id not in people:
                raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
        for household_id in household_ids:
            if household_id not in households:
                raise LedgerError(ErrorCode.HOUSEHOLD_NOT_FOUND, household_id=str(household_id))
        if adding:  # an erased person keeps old memberships but starts no new one
            for person_id in person_ids:
                if people[person_id]:
                    raise LedgerError(ErrorCode.PERSON_ERASED, person_id=str(person_id))
        for household_id in household_ids:
            if households[household_id].dissolved_at is not None:
                raise LedgerError(ErrorCode.HOUSEHOLD_DISSOLVED, household_id=str(household_id))
        return households

    def _members(self, conn: Conn, community_id: int, household_id: UUID) -> list[MemberView]:
        return repo.current_of_households(conn, community_id, [household_id])[household_id]

    @staticmethod
    def _refuse_current(conn: Conn, community_id: int, person_ids: Sequence[UUID]) -> None:
        current = repo.current_of_persons(conn, community_id, person_ids)
        for person_id in person_ids:
            if person_id in current:
                raise LedgerError(
                    ErrorCode.ALREADY_IN_HOUSEHOLD,
                    person_id=str(person_id),
                    household_id=str(current[person_id].household_id),
                )

    # -- changes --------------------------------------------------------------------------------

    def create(
        self,
        community_id: int,
        code: str,
        *,
        village_group: str = "",
        grid: str = "",
        head_person_id: UUID | None = None,
        member_ids: Sequence[UUID] = (),
        actor_id: UUID | None = None,
    ) -> UUID:
        """Create a household with its first members; the head, if named, is a member too."""
        _check_code(code, "code")
        _check_label(village_group, "village_group")
        _check_label(grid, "grid")
        members = _check_ids(member_ids, "member_ids")
        if head_person_id is not None and head_person_id not in members:
            members.insert(0, head_person_id)
        household_id = uuid7()
        change = self._change(community_id, actor_id)
        with self._tx() as conn:
            try:
                self._load(conn, community_id, [], members, adding=True)
            except LedgerError as exc:
                # No person is found in a community that does not exist: name the first cause.
                if exc.code is ErrorCode.PERSON_NOT_FOUND and not repo.community_exists(conn, community_id):
                    raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id) from None
                raise
            try:
                repo.insert_household(
                    conn, community_id, household_id, code, village_group, grid, actor_id, change.at
                )
            except pg_errors.ForeignKeyViolation:
                raise LedgerError(ErrorCode.COMMUNITY_NOT_FOUND, community_id=community_id) from None
            self._refuse_current(conn, community_id, members)
            for person_id in members:
                change.open(household_id, person_id, is_head=person_id == head_person_id)
            change.event(household_id, EventKind.CREATED, member_ids=members, head_person_id=head_person_id)
            change.write(conn)
        return household_id

    def add_member(
        self, community_id: int, household_id: UUID, person_id: UUID, *, actor_id: UUID | None = None
    ) -> None:
        change = self._change(community_id, actor_id)
        with self._tx() as conn:
            self._load(conn, community_id, [household_id], [person_id], adding=True)
            self._refuse_current(conn, community_id, [person_id])
            change.open(household_id, person_id)
            change.event(household_id, EventKind.MEMBER_ADDED, person_id=person_id)
            change.write(conn)

    def remove_member(
        self,
        community_id: int,
        household_id: UUID,
        person_id: UUID,
        *,
        new_head_person_id: UUID | None = None,
        actor_id: UUID | None = None,
    ) -> None:
        """End a membership. Removing the head leaves the household without one unless
        ``new_head_person_id`` (a remaining member) takes over in the same change."""
        people = [person_id] if new_head_person_id is None else [person_id, new_head_person_id]
        change = self._change(community_id, actor_id)
        with self._tx() as conn:
            self._load(conn, community_id, [household_id], people, adding=False)
            members = self._members(conn, community_id, household_id)
            row = _member_of(members, person_id, household_id)
            change.closed.append(row)
            change.event(household_id, EventKind.MEMBER_REMOVED, person_id=person_id)
            if row.is_head:
                _hand_over(change, household_id, members, person_id, new_head_person_id)
            elif new_head_person_id is not None:
                raise _bad("new_head_person_id")  # a head change that is not a removal: use set_head
            change.write(conn)

    def set_head(
        self, community_id: int, household_id: UUID, person_id: UUID, *, actor_id: UUID | None = None
    ) -> None:
        """Make a current member the head. Both rows are closed and reopened, so the head on any
        past date stays answerable. Naming the current head again changes nothing."""
        change = self._change(community_id, actor_id)
        with self._tx() as conn:
            self._load(conn, community_id, [household_id], [person_id], adding=False)
            members = self._members(conn, community_id, household_id)
            row = _member_of(members, person_id, household_id)
            if row.is_head:
                return
            old = _head_of(members)
            if old is not None:
                change.move(old, household_id, is_head=False)
            change.move(row, household_id, is_head=True)
            change.event(
                household_id,
                EventKind.HEAD_CHANGED,
                from_person_id=None if old is None else old.person_id,
                to_person_id=person_id,
            )
            change.write(conn)

    def move_member(
        self, community_id: int, person_id: UUID, to_household_id: UUID, *, actor_id: UUID | None = None
    ) -> None:
        """Move a current member of one household into another (as an ordinary member)."""
        for _ in range(_MOVE_ATTEMPTS):
            with self._tx() as conn:
                if self._try_move(conn, community_id, person_id, to_household_id, actor_id):
                    return
        raise RuntimeError("household membership kept changing during move_member")

    def _try_move(
        self, conn: Conn, community_id: int, person_id: UUID, to_household_id: UUID, actor_id: UUID | None
    ) -> bool:
        """One attempt; False if the person moved between the unlocked look-up and the locks."""
        found = repo.current_of_persons(conn, community_id, [person_id]).get(person_id)
        source = None if found is None else found.household_id
        targets = [to_household_id] if source in (None, to_household_id) else [to_household_id, source]
        self._load(conn, community_id, [h for h in targets if h is not None], [person_id], adding=True)
        if source is None:
            raise LedgerError(ErrorCode.NOT_IN_HOUSEHOLD, person_id=str(person_id))
        row = next((m for m in self._members(conn, community_id, source) if m.person_id == person_id), None)
        if row is None:
            conn.rollback()  # release the locks before trying again
            return False
        if source == to_household_id:
            raise LedgerError(
                ErrorCode.ALREADY_IN_HOUSEHOLD, person_id=str(person_id), household_id=str(source)
            )
        change = self._change(community_id, actor_id)
        change.move(row, to_household_id, is_head=False)
        change.event(source, EventKind.MEMBER_REMOVED, person_id=person_id, to_household_id=to_household_id)
        if row.is_head:
            change.event(source, EventKind.HEAD_CHANGED, from_person_id=person_id, to_person_id=None)
        change.event(to_household_id, EventKind.MEMBER_ADDED, person_id=person_id, from_household_id=source)
        change.write(conn)
        return True

    def split(
        self,
        community_id: int,
        household_id: UUID,
        person_ids: Sequence[UUID],
        new_code: str,
        *,
        head_person_id: UUID,
        new_head_person_id: UUID | None = None,
        actor_id: UUID | None = None,
    ) -> UUID:
        """Move ``person_ids`` into a new household headed by ``head_person_id`` (one of them); the
        old household keeps the rest. If its head leaves, ``new_head_person_id`` (a member who stays)
        must be named; it may also give a headless household a head, but never replace a staying one.
        The new household takes the old one's village group and grid."""
        _check_code(new_code, "new_code")
        leaving = _check_ids(person_ids, "person_ids")
        if not leaving:
            raise _bad("person_ids")
        if head_person_id not in leaving:
            raise _bad("head_person_id")
        if new_head_person_id in leaving:
            raise _bad("new_head_person_id")
        people = leaving if new_head_person_id is None else [*leaving, new_head_person_id]
        new_id = uuid7()
        change = self._change(community_id, actor_id)
        with self._tx() as conn:
            old = self._load(conn, community_id, [household_id], people, adding=False)[household_id]
            members = self._members(conn, community_id, household_id)
            rows = [_member_of(members, p, household_id) for p in leaving]
            staying = [m for m in members if m.person_id not in set(leaving)]
            if not staying:
                raise _bad("person_ids")  # everyone leaving is a new code, not a split
            for row in rows:
                change.move(row, new_id, is_head=row.person_id == head_person_id)
            change.event(household_id, EventKind.SPLIT_OUT, to_household_id=new_id, person_ids=leaving)
            old_head = _head_of(members)
            head_leaves = old_head is not None and old_head.person_id in leaving
            if (head_leaves and new_head_person_id is None) or (
                old_head is not None and not head_leaves and new_head_person_id is not None
            ):
                raise _bad("new_head_person_id")
            if head_leaves or new_head_person_id is not None:
                from_id = None if old_head is None else old_head.person_id
                _hand_over(change, household_id, staying, from_id, new_head_person_id)
            change.event(
                new_id,
                EventKind.SPLIT_IN,
                from_household_id=household_id,
                person_ids=leaving,
                head_person_id=head_person_id,
            )
            repo.insert_household(
                conn, community_id, new_id, new_code, old.village_group, old.grid, actor_id, change.at
            )
            change.write(conn)
        return new_id

    def merge(
        self, community_id: int, source_id: UUID, target_id: UUID, *, actor_id: UUID | None = None
    ) -> None:
        """Move every member of ``source_id`` into ``target_id`` and dissolve the source. The target
        keeps its head; a headless target takes the source's head."""
        if source_id == target_id:
            raise _bad("target_id")
        change = self._change(community_id, actor_id)
        with self._tx() as conn:
            self._load(conn, community_id, [source_id, target_id], [], adding=False)
            current = repo.current_of_households(conn, community_id, [source_id, target_id])
            moving, target_head = current[source_id], _head_of(current[target_id])
            for row in moving:
                change.move(row, target_id, is_head=row.is_head and target_head is None)
            moved = [row.person_id for row in moving]
            change.event(target_id, EventKind.MERGED_FROM, from_household_id=source_id, person_ids=moved)
            source_head = _head_of(moving)
            if target_head is None and source_head is not None:
                change.event(
                    target_id, EventKind.HEAD_CHANGED, from_person_id=None, to_person_id=source_head.person_id
                )
            change.event(source_id, EventKind.MERGED_INTO, to_household_id=target_id, person_ids=moved)
            change.event(source_id, EventKind.DISSOLVED, person_ids=[], merged_into_household_id=target_id)
            at = change.write(conn)
            repo.dissolve(conn, community_id, source_id, at)

    def dissolve(self, community_id: int, household_id: UUID, *, actor_id: UUID | None = None) -> None:
        """Close every current membership and mark the household dissolved; it takes no more changes."""
        change = self._change(community_id, actor_id)
        with self._tx() as conn:
            self._load(conn, community_id, [household_id], [], adding=False)
            members = self._members(conn, community_id, household_id)
            change.closed.extend(members)
            change.event(household_id, EventKind.DISSOLVED, person_ids=[m.person_id for m in members])
            at = change.write(conn)
            repo.dissolve(conn, community_id, household_id, at)

    # -- reads ----------------------------------------------------------------------------------

    def get(self, community_id: int, household_id: UUID, *, at: datetime | None = None) -> HouseholdView:
        """The household with its members as of ``at`` (default: now)."""
        instant = self._clock() if at is None else _check_instant(at, "at")
        with self._pool.connection() as conn:
            [view] = repo.views_as_of(
                conn, community_id, [_exists(conn, community_id, household_id)], instant
            )
        return view

    def history(self, community_id: int, household_id: UUID) -> builtins.list[HouseholdEventView]:
        """Every event of the household, oldest first."""
        with self._pool.connection() as conn:
            return repo.events(conn, community_id, _exists(conn, community_id, household_id).household_id)

    def household_of(self, community_id: int, person_id: UUID, *, at: datetime | None = None) -> UUID | None:
        """The household the person belonged to at ``at`` (default: now), or None."""
        instant = self._clock() if at is None else _check_instant(at, "at")
        with self._pool.connection() as conn:
            found = repo.household_of(conn, community_id, person_id, instant)
            if found is None and not repo.persons(conn, community_id, [person_id]):
                raise LedgerError(ErrorCode.PERSON_NOT_FOUND, person_id=str(person_id))
        return found

    def list(
        self,
        community_id: int,
        *,
        after: UUID | None = None,
        limit: int = 50,
        village_group: str | None = None,
        grid: str | None = None,
        include_dissolved: bool = False,
    ) -> builtins.list[HouseholdView]:
        """One page of households ordered by id, with current members; pass the last id as ``after``."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
            raise _bad("limit")
        if village_group is not None:
            _check_label(village_group, "village_group")
        if grid is not None:
            _check_label(grid, "grid")
        now = self._clock()
        with self._pool.connection() as conn:
            rows = repo.list_households(
                conn,
                community_id,
                after=after,
                limit=limit,
                village_group=village_group,
                grid=grid,
                include_dissolved=include_dissolved,
            )
            return repo.views_as_of(conn, community_id, rows, now)


def _exists(conn: Conn, community_id: int, household_id: UUID) -> HouseholdRow:
    row = repo.get_household(conn, community_id, household_id)
    if row is None:
        raise LedgerError(ErrorCode.HOUSEHOLD_NOT_FOUND, household_id=str(household_id))
    return row


def _hand_over(
    change: MembershipChange,
    household_id: UUID,
    members: Sequence[MemberView],
    old_head: UUID | None,
    new_head: UUID | None,
) -> None:
    """Record a head change from ``old_head`` to ``new_head`` (a current member) or to nobody."""
    if new_head is not None:
        if new_head == old_head:
            raise _bad("new_head_person_id")
        change.move(_member_of(members, new_head, household_id), household_id, is_head=True)
    change.event(household_id, EventKind.HEAD_CHANGED, from_person_id=old_head, to_person_id=new_head)
