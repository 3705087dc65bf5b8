"""The demo community a newcomer gets: members with credited service, a sign-in per kind of user,
an activity with one posted and one submitted record, a catalog item; and the ledger checks out."""

from __future__ import annotations

from pathlib import Path

from psycopg_pool import ConnectionPool

from ledger.config import Settings
from ledger.services.demo import DEMO_PASSWORD, DEMO_USERS, DEMO_VOLUNTEER, DemoExtras, find_demo, seed_demo
from ledger.services.invariants import check_community
from ledger.store.db import Conn
from vledger.wiring import build_services


def test_the_demo_community_is_complete_and_consistent(
    pool: ConnectionPool[Conn], owner: Conn, tmp_path: Path
) -> None:
    services = build_services(pool, Settings(data_dir=tmp_path))
    assert find_demo(services.communities) is None  # each test session starts on a fresh database
    cid = seed_demo(
        services.communities,
        services.ledger,
        services.people,
        services.identity,
        members=6,
        extras=DemoExtras(services.activities, services.records, services.shop),
    )
    assert find_demo(services.communities) == cid
    for username, _ in (*DEMO_USERS, (DEMO_VOLUNTEER, None)):
        assert services.identity.login(username, DEMO_PASSWORD).secret
    states = sorted(r.state.value for r in services.records.list(cid, limit=10))
    assert states == ["posted", "submitted"]
    items = owner.execute(
        "SELECT name, stock_available FROM shop_item WHERE community_id = %s", (cid,)
    ).fetchall()
    assert items == [("洗衣液（2 千克）", 20)]
    with pool.connection() as conn:
        assert check_community(conn, cid) == []
