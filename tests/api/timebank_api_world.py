"""The time bank for the API tests: people of a given age, coins, users who are those people, and
exchanges in any state, made through the services (not over HTTP) on the world's community.

The services run on the real clock, so ages are counted from today (China date).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from api.deps import Services
from ledger.domain.accounts import AccountSpec, OwnerKind, SystemAccount, member_account_flags
from ledger.domain.errors import ErrorCode, LedgerError
from ledger.domain.ids import uuid7
from ledger.domain.people import PersonProfile
from ledger.domain.roles import Grant, PersonRef, Role
from ledger.domain.service_credit import CHINA_TZ
from ledger.domain.timebank import Actor
from ledger.domain.timebank_rules import RelationKind
from ledger.domain.transfers import Posting, TransferRequest
from ledger.domain.units import Unit
from tests.api.conftest import Client, World

COIN = 60  # coin minutes in one coin
COIN_UNIT = Unit.COIN_MINUTES


def today() -> date:
    return datetime.now(CHINA_TZ).date()


def born(age: int) -> date:
    """A birth date that makes someone ``age`` (completed years) every day of this year."""
    return date(today().year - age, 1, 1)


def person(w: World, s: Services, age: int | None = 70, *, community_id: int | None = None) -> uuid.UUID:
    profile = PersonProfile(name="测试人员", birth_date=None if age is None else born(age))
    return s.people.create(
        community_id or w.community_id,
        profile,
        consent_entry=True,
        consent_publish=False,
        entered_by_self=False,
    )


def coin_account(s: Services, community_id: int, person_id: uuid.UUID) -> uuid.UUID:
    spec = AccountSpec(OwnerKind.PERSON, COIN_UNIT, member_account_flags(COIN_UNIT), owner_id=person_id)
    try:
        return s.communities.open_account(community_id, spec)
    except LedgerError as err:
        if err.code is not ErrorCode.ACCOUNT_EXISTS:
            raise
    (found,) = s.accounts.find(community_id, owner_kind="person", owner_id=person_id, unit=COIN_UNIT)
    return found.account_id


def system(s: Services, community_id: int, code: SystemAccount) -> uuid.UUID:
    accounts = s.accounts.find(community_id, owner_kind="community", unit=COIN_UNIT, limit=50)
    return next(a.account_id for a in accounts if a.code == code)


def award(
    w: World, s: Services, person_id: uuid.UUID, coin_minutes: int, *, community_id: int | None = None
) -> None:
    """Coins from issuance, as service records credit them."""
    c = community_id or w.community_id
    postings = (
        Posting(system(s, c, SystemAccount.ISSUANCE), COIN_UNIT, -coin_minutes),
        Posting(coin_account(s, c, person_id), COIN_UNIT, coin_minutes),
    )
    s.ledger.transfer(TransferRequest(c, "award", postings, f"award-{uuid7()}"))


def balance(s: Services, community_id: int, person_id: uuid.UUID) -> tuple[int, int]:
    """(posted, available) coin minutes."""
    view = s.ledger.balance(community_id, coin_account(s, community_id, person_id))
    return view.posted, view.available


def user(
    w: World,
    s: Services,
    name: str,
    person_id: uuid.UUID,
    *,
    role: Role = Role.VOLUNTEER,
    community_id: int | None = None,
) -> str:
    """A user who is ``person_id`` with ``role`` in their community, signed in as ``w.tokens[name]``."""
    c = community_id or w.community_id
    user_id = s.identity.create_user(
        f"{name.replace('_', '-')}-{uuid.uuid4().hex[:8]}", None, person=PersonRef(c, person_id)
    )
    s.identity.grant(user_id, Grant(role, community_id=c))
    w.user_ids[name] = user_id
    w.tokens[name] = s.identity.issue_api_token(user_id, "tests").secret
    return name


def grant_user(w: World, s: Services, name: str, grant: Grant) -> str:
    """A user who is nobody, with one grant, signed in as ``w.tokens[name]``."""
    user_id = s.identity.create_user(f"{name.replace('_', '-')}-{uuid.uuid4().hex[:8]}", None)
    s.identity.grant(user_id, grant)
    w.user_ids[name] = user_id
    w.tokens[name] = s.identity.issue_api_token(user_id, "tests").secret
    return name


def staff(w: World) -> Actor:
    return Actor(w.user_ids["social_worker"], None, staff=True)


_elders: set[int] = set()


def volunteer_elder(w: World, s: Services) -> uuid.UUID:
    """The world's volunteer, 70 today (once per world), with another coin on each call."""
    if w.community_id not in _elders:
        s.people.update_profile(
            w.community_id, w.volunteer_person, PersonProfile(name="李明", birth_date=born(70)), actor_id=None
        )
        _elders.add(w.community_id)
    award(w, s, w.volunteer_person, COIN)
    return w.volunteer_person


def exchange(
    w: World,
    s: Services,
    state: str = "requested",
    *,
    recipient: uuid.UUID | None = None,
    provider: uuid.UUID | None = None,
) -> uuid.UUID:
    """A one-hour exchange (per-hour pricing, one coin) taken to ``state`` by staff and the recipient.
    Without a recipient, a fresh 70-year-old with a coin; without a provider, a fresh person."""
    c, bank = w.community_id, s.timebank
    if recipient is None:
        recipient = person(w, s)
        award(w, s, recipient, COIN)
    me = Actor(uuid7(), (c, recipient))
    x = bank.request(c, recipient, service="家政", planned_minutes=60, actor=staff(w)).exchange_id
    if state == "requested":
        return x
    provider = provider or person(w, s, 40)
    bank.match(c, x, provider_community_id=c, provider_person_id=provider, actor=staff(w))
    if state != "matched":
        bank.start(c, x, actor=staff(w))
    if state in ("confirmed", "settled"):
        bank.confirm(c, x, actor=me, served_minutes=60)
    if state == "settled":
        bank.settle(c, x, actor=staff(w))
    if state == "disputed":
        bank.dispute(c, x, actor=staff(w), reason="服务时长有争议")
    return x


def relation(
    w: World, s: Services, person_id: uuid.UUID, kind: RelationKind = RelationKind.PARENT
) -> uuid.UUID:
    """A fresh relative of ``person_id`` (their ``kind``), recorded by staff; returns the relation id."""
    relative = person(w, s, 88)
    return s.timebank_members.record_relation(
        w.community_id, person_id, relative, kind, actor=staff(w)
    ).relation_id


def relative(w: World, s: Services, person_id: uuid.UUID) -> uuid.UUID:
    """A fresh parent of ``person_id``, recorded by staff; returns the parent."""
    parent = person(w, s, 88)
    s.timebank_members.record_relation(w.community_id, person_id, parent, RelationKind.PARENT, actor=staff(w))
    return parent


def flag(w: World, s: Services, person_id: uuid.UUID) -> uuid.UUID:
    return s.timebank_members.grant_hardship(
        w.community_id, person_id, valid_from=date(2020, 1, 1), actor=staff(w)
    ).flag_id


def call(
    http: Client, w: World, who: str, method: str, path: str, body: object = None, key: str | None = None
) -> Any:
    """``method`` on ``path`` (relative to the community unless it starts with /api) as ``who``."""
    headers = w.auth(who) | ({"Idempotency-Key": key} if key else {})
    url = path if path.startswith("/api") else f"/api/v1/communities/{w.community_id}{path}"
    return http.request(method, url, json=body, headers=headers)


def elder_with_coin(w: World, s: Services) -> uuid.UUID:
    """A fresh 70-year-old with one coin."""
    elder = person(w, s)
    award(w, s, elder, COIN)
    return elder


X = "/timebank/exchanges"
REPLAYED = "idempotent-replayed"


def ok(response: Any, status: int = 200) -> Any:
    """The JSON body (an object or a list) of a call that answered ``status``."""
    assert response.status_code == status, response.text
    return response.json()


def step(http: Client, w: World, who: str, x: str, name: str, body: object = None, **kw: Any) -> Any:
    """POST a step (``match``, ``start``, ``confirmation``, …) on exchange ``x`` as ``who``."""
    return call(http, w, who, "POST", f"{X}/{x}/{name}", body, **kw)
