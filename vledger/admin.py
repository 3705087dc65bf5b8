"""``vledger admin``: regions, communities, users, role grants and API tokens from the command line."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import click
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from ledger.config import Settings, get_settings
from ledger.domain.errors import LedgerError
from ledger.domain.roles import ROLE_NAMES_ZH, Grant, Role
from ledger.services.communities import Communities
from ledger.services.identity import Identity
from ledger.store import migrate
from ledger.store.db import Conn, open_pool

_MAX_EXPIRES_DAYS = 3650


@dataclass(frozen=True, slots=True)
class _Env:
    settings: Settings
    pool: ConnectionPool[Conn]
    identity: Identity

    def communities(self) -> Communities:
        return Communities(
            self.pool,
            origin_prefix=self.settings.log_origin_prefix,
            hot_buckets=self.settings.hot_account_buckets,
        )


@contextmanager
def _database() -> Iterator[_Env]:
    """The service database, migrated, as ``serve`` opens it (runtime role, small pool)."""
    # Imported here: vledger.cli registers this group, so a top-level import would be circular.
    from vledger.cli import owner_database  # noqa: PLC0415

    settings = get_settings()
    with owner_database(settings) as url:
        migrate.upgrade(url)
        pool = open_pool(url, app_url=settings.app_database_url, min_size=1, max_size=2, name="vledger-admin")
        try:
            yield _Env(settings, pool, Identity(pool, session_ttl_s=settings.session_ttl_s))
        finally:
            pool.close()


def _fail(message: str) -> NoReturn:
    click.echo(f"错误：{message}", err=True)
    raise click.exceptions.Exit(1)


class _AdminGroup(click.Group):
    """Turns business failures into a Chinese message and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LedgerError as exc:
            field = exc.field
            suffix = f"（字段：{field}）" if field else ""
            _fail(f"{exc.code.message_zh}{suffix}")
        except pg_errors.UniqueViolation:
            _fail("编号已被使用")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = click.prompt("密码", hide_input=True, confirmation_prompt="再次输入密码")
    return value


def _scope(grant: Grant) -> str:
    return f"社区 {grant.community_id}" if grant.community_id is not None else f"街道 {grant.region_id}"


_GRANT_HELP = "授予用户角色，范围为一个社区或一个街道（二者选一）。\n\n\b\nROLE 可选：\n" + "\n".join(
    f"  {role:<16}{ROLE_NAMES_ZH[role]}" for role in Role
)


@click.group(cls=_AdminGroup)
def admin() -> None:
    """管理命令：街道、社区、用户、角色授权与接口令牌。"""


@admin.command("create-region")
@click.argument("code")
@click.argument("name")
def create_region(code: str, name: str) -> None:
    """创建街道（乡镇）。CODE 为街道编号，NAME 为名称。"""
    with _database() as env:
        region_id = env.communities().create_region(code, name)
    click.echo(f"已创建街道「{name}」（编号 {code}，内部编号 {region_id}）")


@admin.command("create-community")
@click.argument("region_code")
@click.argument("code")
@click.argument("name")
def create_community(region_code: str, code: str, name: str) -> None:
    """在街道 REGION_CODE 下创建社区（村/居委会），同时开设系统账户。"""
    with _database() as env:
        region_id = env.identity.find_region(region_code)
        if region_id is None:
            _fail(f"街道编号 {region_code} 不存在")
        info = env.communities().create_community(region_id, code, name)
    click.echo(f"已创建社区「{name}」（编号 {code}，内部编号 {info.community_id}）")


@admin.command("create-user")
@click.argument("username")
@click.option("--no-password", is_flag=True, help="不设密码（仅用接口令牌登录）")
@click.option("--password-stdin", is_flag=True, help="从标准输入读取密码（一行）")
def create_user(username: str, no_password: bool, password_stdin: bool) -> None:
    """创建用户。用户名为 3–64 位小写字母、数字或 ._- 。"""
    password = None if no_password else _read_password(password_stdin)
    with _database() as env:
        user_id = env.identity.create_user(username, password)
    click.echo(f"已创建用户 {username}（编号 {user_id}）")


@admin.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="从标准输入读取密码（一行）")
def set_password(username: str, password_stdin: bool) -> None:
    """重设用户密码（已签发的令牌仍然有效）。"""
    password = _read_password(password_stdin)
    with _database() as env:
        user = env.identity.user_by_name(username)
        env.identity.set_password(user.user_id, password)
    click.echo(f"已重设用户 {username} 的密码")


@admin.command("disable-user")
@click.argument("username")
def disable_user(username: str) -> None:
    """停用用户：不能再登录，已签发的令牌随即失效。"""
    with _database() as env:
        user = env.identity.user_by_name(username)
        env.identity.disable_user(user.user_id)
    click.echo(f"已停用用户 {username}")


@admin.command("grant", help=_GRANT_HELP)
@click.argument("username")
@click.argument("role", type=click.Choice([str(r) for r in Role]), metavar="ROLE")
@click.option("--community", "community_code", help="授权范围：社区编号")
@click.option("--region", "region_code", help="授权范围：街道编号（该街道下全部社区）")
def grant(username: str, role: str, community_code: str | None, region_code: str | None) -> None:
    if (community_code is None) == (region_code is None):
        raise click.UsageError("须且只能指定 --community 或 --region 之一")
    with _database() as env:
        if community_code is not None:
            community_id = env.identity.find_community(community_code)
            if community_id is None:
                _fail(f"社区编号 {community_code} 不存在")
            the_grant = Grant(Role(role), community_id=community_id)
            where = f"社区 {community_code}"
        else:
            assert region_code is not None
            region_id = env.identity.find_region(region_code)
            if region_id is None:
                _fail(f"街道编号 {region_code} 不存在")
            the_grant = Grant(Role(role), region_id=region_id)
            where = f"街道 {region_code}"
        user = env.identity.user_by_name(username)
        grant_id = env.identity.grant(user.user_id, the_grant)
    click.echo(f"已授予 {username} 「{ROLE_NAMES_ZH[Role(role)]}」角色（{where}），授权编号 {grant_id}")


@admin.command("revoke-grant")
@click.argument("grant_id", type=click.UUID)
def revoke_grant(grant_id: uuid.UUID) -> None:
    """撤销一项角色授权（授权编号见 grant 与 list-users 的输出）。"""
    with _database() as env:
        revoked = env.identity.revoke_grant(grant_id)
    if not revoked:
        _fail(f"授权 {grant_id} 不存在或已撤销")
    click.echo(f"已撤销授权 {grant_id}")


@admin.command("issue-token")
@click.argument("username")
@click.argument("name")
@click.option(
    "--expires-days",
    type=click.IntRange(1, _MAX_EXPIRES_DAYS),
    default=None,
    help="有效天数（默认长期有效）",
)
def issue_token(username: str, name: str, expires_days: int | None) -> None:
    """为对接系统签发接口令牌。令牌只显示这一次，请立即妥善保存。"""
    expires_in_s = None if expires_days is None else expires_days * 86_400
    with _database() as env:
        user = env.identity.user_by_name(username)
        issued = env.identity.issue_api_token(user.user_id, name, expires_in_s=expires_in_s)
    until = "长期有效" if issued.expires_at is None else f"有效期至 {issued.expires_at:%Y-%m-%d %H:%M} UTC"
    # Only the secret goes to standard output, so scripts can capture it: TOKEN=$(vledger admin ...).
    click.echo(f"已为用户 {username} 签发接口令牌「{name}」（编号 {issued.token_id}，{until}）", err=True)
    click.echo("令牌如下，只显示这一次，请立即妥善保存：", err=True)
    click.echo(issued.secret)


@admin.command("list-users")
def list_users() -> None:
    """列出全部用户及其有效的角色授权。"""
    with _database() as env:
        users = env.identity.users()
        grants = {u.user_id: env.identity.active_grants(u.user_id) for u in users if u.grants}
    if not users:
        click.echo("尚无用户")
        return
    for user in users:
        state = "（已停用）" if user.disabled else ""
        click.echo(f"{user.username}{state}  编号 {user.user_id}")
        for grant_id, g in grants.get(user.user_id, []):
            click.echo(f"    {ROLE_NAMES_ZH[g.role]}（{_scope(g)}）  授权编号 {grant_id}")
