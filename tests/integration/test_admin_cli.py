"""``vledger admin`` through click's CliRunner against the test database: set up a region, a
community and a user, grant a role, issue a token, and resolve that token with Identity."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from psycopg_pool import ConnectionPool

from ledger.config import get_settings
from ledger.domain.roles import Grant, Permission, Role
from ledger.services.identity import Identity
from ledger.store.db import Conn
from vledger.admin import admin


@pytest.fixture
def cli(db_url: str) -> Iterator[CliRunner]:
    # Settings are cached per process; clear them so the commands read this environment.
    get_settings.cache_clear()
    yield CliRunner(env={"DATABASE_URL": db_url, "VLEDGER_APP_DATABASE_URL": None})
    get_settings.cache_clear()


def run(cli: CliRunner, *args: str, stdin: str | None = None) -> Result:
    return cli.invoke(admin, list(args), input=stdin, catch_exceptions=False)


def ok(cli: CliRunner, *args: str, stdin: str | None = None) -> Result:
    result = run(cli, *args, stdin=stdin)
    assert result.exit_code == 0, result.output
    return result


def test_set_up_a_community_and_use_its_token(cli: CliRunner, pool: ConnectionPool[Conn]) -> None:
    tag = uuid.uuid4().hex[:8]
    region, community, username = f"r{tag}", f"c{tag}", f"admin-{tag}"
    assert "已创建街道" in ok(cli, "create-region", region, "测试街道").output
    assert "已创建社区" in ok(cli, "create-community", region, community, "幸福社区").output
    created = ok(cli, "create-user", username, "--password-stdin", stdin="a long password\n")
    assert f"已创建用户 {username}" in created.output and "a long password" not in created.output
    granted = ok(cli, "grant", username, "community_admin", "--community", community)
    assert "社区管理员" in granted.output
    issued = ok(cli, "issue-token", username, "对接系统", "--expires-days", "30")
    secret = issued.stdout.strip()
    assert secret.startswith("vl_") and "\n" not in secret  # only the secret on standard output
    assert "只显示这一次" in issued.stderr and secret not in issued.stderr

    identity = Identity(pool)
    principal = identity.resolve(secret)
    assert principal is not None and principal.username == username
    (grant,) = principal.grants
    assert grant.role == Role.COMMUNITY_ADMIN and grant.community_id is not None
    region_id = identity.region_of(grant.community_id)
    assert principal.can(Permission.USER_MANAGE, grant.community_id, region_id)
    (token,) = identity.tokens_of(principal.user_id)
    assert token.kind == "api" and token.name == "对接系统" and token.expires_at is not None

    listed = ok(cli, "list-users").output
    assert username in listed and "社区管理员" in listed and secret not in listed
    grant_id = next(gid for gid, g in identity.active_grants(principal.user_id) if g == grant)
    assert str(grant_id) in listed

    assert "已撤销授权" in ok(cli, "revoke-grant", str(grant_id)).output
    assert identity.grants_of(principal.user_id) == ()
    # The CLI's own Identity invalidated nothing here (another process); this one reads afresh.
    fresh = Identity(pool).resolve(secret)
    assert fresh is not None and fresh.grants == ()
    again = run(cli, "revoke-grant", str(grant_id))
    assert again.exit_code == 1 and "不存在或已撤销" in again.stderr


def test_region_wide_grant_and_password_prompt(cli: CliRunner, pool: ConnectionPool[Conn]) -> None:
    tag = uuid.uuid4().hex[:8]
    region, username = f"r{tag}", f"lead-{tag}"
    ok(cli, "create-region", region, "测试街道")
    prompted = ok(cli, "create-user", username, stdin="a long password\na long password\n")
    assert "a long password" not in prompted.output  # hidden input is not echoed
    ok(cli, "grant", username, "region_admin", "--region", region)
    identity = Identity(pool)
    session = identity.login(username, "a long password")
    principal = identity.resolve(session.secret)
    assert principal is not None
    (grant,) = principal.grants
    assert grant == Grant(Role.REGION_ADMIN, region_id=grant.region_id) and grant.region_id is not None


def test_failures_are_reported_in_chinese_with_exit_code_1(cli: CliRunner) -> None:
    tag = uuid.uuid4().hex[:8]
    region, username = f"r{tag}", f"user-{tag}"
    ok(cli, "create-region", region, "测试街道")
    dup = run(cli, "create-region", region, "另一个街道")
    assert dup.exit_code == 1 and "编号已被使用" in dup.stderr
    missing = run(cli, "create-community", f"none-{tag}", f"c{tag}", "社区")
    assert missing.exit_code == 1 and "不存在" in missing.stderr

    short = run(cli, "create-user", username, "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "字段内容不符合要求" in short.stderr and "short" not in short.output
    ok(cli, "create-user", username, "--no-password")
    taken = run(cli, "create-user", username, "--no-password")
    assert taken.exit_code == 1 and "用户名已被使用" in taken.stderr
    bad_name = run(cli, "create-user", "Bad Name", "--no-password")
    assert bad_name.exit_code == 1 and "username" in bad_name.stderr

    unknown = run(cli, "issue-token", f"nobody-{tag}", "x")
    assert unknown.exit_code == 1 and "用户不存在" in unknown.stderr and "vl_" not in unknown.output
    both = run(cli, "grant", username, "auditor", "--community", "x", "--region", region)
    assert both.exit_code == 2 and "--community" in both.output
    no_scope = run(cli, "grant", username, "auditor", "--community", f"none-{tag}")
    assert no_scope.exit_code == 1 and "社区编号" in no_scope.stderr
    bad_role = run(cli, "grant", username, "emperor", "--region", region)
    assert bad_role.exit_code == 2


def test_disable_user_stops_its_tokens(cli: CliRunner, pool: ConnectionPool[Conn]) -> None:
    username = f"gone-{uuid.uuid4().hex[:8]}"
    ok(cli, "create-user", username, "--no-password")
    secret = ok(cli, "issue-token", username, "t").stdout.strip()
    identity = Identity(pool, cache_size=0)
    assert identity.resolve(secret) is not None
    assert "已停用" in ok(cli, "disable-user", username).output
    assert identity.resolve(secret) is None
    assert "（已停用）" in ok(cli, "list-users").output
