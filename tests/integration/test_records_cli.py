"""``vledger records import`` through click's CliRunner against the test database, and
``vledger bench-import`` at a tiny scale (a smoke test of the command, not a timed test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from psycopg_pool import ConnectionPool

from ledger.config import Settings, get_settings
from ledger.domain.people import PersonProfile
from ledger.domain.roles import Grant, Role
from ledger.domain.service_credit import CHINA_TZ
from ledger.domain.service_records import ActivityFields
from ledger.privacy.keyring import Keyring
from ledger.services.activities import Activities
from ledger.services.communities import CommunityInfo
from ledger.services.identity import Identity
from ledger.services.people import People
from ledger.services.rule_settings import RuleSettings
from ledger.store.db import Conn
from vledger.bench_import import id_number
from vledger.bench_import import run as bench_run
from vledger.records_cli import records


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Iterator[CliRunner]:
    get_settings.cache_clear()  # settings are cached per process: read this environment
    env = {"DATABASE_URL": db_url, "VLEDGER_APP_DATABASE_URL": None, "VLEDGER_DATA_DIR": str(tmp_path)}
    yield CliRunner(env=env)
    get_settings.cache_clear()


def run(cli: CliRunner, *args: str) -> Result:
    return cli.invoke(records, list(args), catch_exceptions=False)


def test_check_then_import_a_sheet(
    cli: CliRunner, pool: ConnectionPool[Conn], community: CommunityInfo, tmp_path: Path
) -> None:
    c, tag = community.community_id, uuid.uuid4().hex[:8]
    identity = Identity(pool)
    worker, leader = identity.create_user(f"sw-{tag}", None), identity.create_user(f"al-{tag}", None)
    identity.grant(worker, Grant(Role.SOCIAL_WORKER, community_id=c))
    RuleSettings(pool).publish(c, {"working_day_calendar": "mon_to_fri"}, effective_from=date(2000, 1, 1))
    today = datetime.now(CHINA_TZ).date()
    fields = ActivityFields("社区助老服务", today, today, "活动中心", "陪伴老人", "居委会")
    Activities(pool).create(c, fields, leader_user_id=leader, actor_id=worker)
    keys = Settings(data_dir=tmp_path, master_keys=None, blind_index_key=None)  # the command's keys
    people = People(pool, Keyring.from_settings(keys))
    number = id_number(7)
    people.create(c, _profile(number), consent_entry=True, consent_publish=False, entered_by_self=False)
    good = tmp_path / "hours.csv"
    good.write_text(
        f"证件号码,活动名称,服务日期,开始时间,结束时间\n{number},社区助老服务,{today},09:00,11:45\n"
    )
    base = ("import", str(good), "--community", str(c), "--user", f"sw-{tag}")

    checked = run(cli, *base, "--dry-run")
    assert checked.exit_code == 0, checked.output
    assert "检查通过" in checked.output and number not in checked.output
    imported = run(cli, *base)
    assert imported.exit_code == 0, imported.output
    assert "已导入 1 条记录，1 笔记账" in imported.output
    again = run(cli, *base)
    assert again.exit_code == 0 and "已导入 0 条记录" in again.output

    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"证件号码,活动名称,服务日期,开始时间,结束时间\n{number},社区助老服务,{today},11:00,10:00\n"
    )
    refused = run(cli, "import", str(bad), "--community", community.code, "--user", f"sw-{tag}")
    assert refused.exit_code == 1 and "END_NOT_AFTER_START" in refused.output and "未导入" in refused.output
    forbidden = run(cli, "import", str(good), "--community", str(c), "--user", f"al-{tag}")
    assert forbidden.exit_code == 1 and "没有录入志愿服务记录的权限" in forbidden.output


def _profile(number: str) -> PersonProfile:
    return PersonProfile(name="张伟", id_number=number)


def test_bench_import_runs_at_a_tiny_scale(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    printed: list[object] = []
    rows = bench_run(db_url, people=5, rows=40, out=lambda *a, **k: printed.extend(a))
    assert [r["workload"] for r in rows] == ["dry run", "import", "import again", "batch stage of the import"]
    assert rows[1]["postings"] == rows[0]["postings"] and rows[2]["postings"] == 0
    assert isinstance(rows[1]["postings_per_s"], int) and rows[1]["postings_per_s"] > 0
    assert "postings/s" in str(printed[0])
