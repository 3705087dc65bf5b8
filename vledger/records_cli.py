"""``vledger records import``: check or import a sheet of service hours from the command line.

Opens the service database as ``vledger admin`` does (runtime role, migrations applied) and runs
the same use case as the HTTP endpoint (ledger/services/record_import.py). The importing user is
named with ``--user`` and must hold ``record:write`` in the community: the records carry them as
their recorder. Exit code 0: the sheet is clean (and, without ``--dry-run``, imported); 1: it has
problems, listed by row and column (never a cell's value), or the import failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from psycopg_pool import ConnectionPool
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.deps import Services
from ledger.config import get_settings
from ledger.domain.errors import LedgerError
from ledger.domain.roles import Permission, Principal
from ledger.services.record_import import ImportReport
from ledger.store import migrate
from ledger.store.db import Conn, open_pool
from vledger.wiring import build_services

_STAGES = {"read": "读取表格", "check": "逐行核对", "post": "写入并记账"}
_MAX_LISTED = 200  # problems printed; the count says how many there are


@contextmanager
def _services() -> Iterator[Services]:
    from vledger.cli import owner_database  # noqa: PLC0415 - vledger.cli registers this group

    settings = get_settings()
    with owner_database(settings) as url:
        migrate.upgrade(url)
        pool: ConnectionPool[Conn] = open_pool(
            url, app_url=settings.app_database_url, min_size=1, max_size=4, name="vledger-records"
        )
        try:
            yield build_services(pool, settings)
        finally:
            pool.close()


def _fail(message: str) -> None:
    click.echo(f"错误：{message}", err=True)
    raise click.exceptions.Exit(1)


@click.group()
def records() -> None:
    """志愿服务记录：批量导入。"""


@records.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--community", required=True, help="社区内部编号（数字）或社区编号")
@click.option("--user", "username", required=True, help="导入人（须有录入权限）的用户名")
@click.option("--dry-run", is_flag=True, help="只检查，不写入")
def import_sheet(file: Path, community: str, username: str, dry_run: bool) -> None:
    """检查并导入一份志愿服务时长表（CSV 或 XLSX）。有任何问题时整份不导入。"""
    data = file.read_bytes()
    console = Console(stderr=True)
    with _services() as services:
        try:
            community_id = _community(services, community)
            user = services.identity.user_by_name(username)
            principal = Principal(user.user_id, user.username, user.grants, user.person)
            region_id = services.identity.region_of(community_id)
            if user.disabled or not principal.can(Permission.RECORD_WRITE, community_id, region_id):
                _fail(f"用户 {username} 在该社区没有录入志愿服务记录的权限")
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                tasks: dict[str, TaskID] = {}

                def note(stage: str, done: int, total: int) -> None:
                    if stage not in tasks:
                        tasks[stage] = progress.add_task(_STAGES.get(stage, stage), total=total)
                    progress.update(tasks[stage], completed=done, total=total)

                report = services.record_import.run(
                    community_id, data, actor_id=user.user_id, dry_run=dry_run, progress=note
                )
        except LedgerError as exc:
            suffix = f"（字段：{exc.field}）" if exc.field else ""
            _fail(f"{exc.code.message_zh}{suffix}")
    _print(report)
    if report.problems or not (dry_run or report.committed):
        raise click.exceptions.Exit(1)


def _community(services: Services, given: str) -> int:
    if given.isdigit():
        return int(given)
    found = services.communities.find_by_code(given)
    if found is None:
        _fail(f"社区编号 {given} 不存在")
    assert found is not None
    return found


def _print(report: ImportReport) -> None:
    console = Console()
    summary = Table(show_header=False)
    summary.add_row("数据行", str(report.rows))
    summary.add_row("可导入" if report.dry_run else "本次导入", str(report.ready_rows))
    summary.add_row("此前已导入", str(report.already_imported_rows))
    summary.add_row("有问题的行", str(report.problem_rows))
    summary.add_row("服务时长（分钟）", str(report.credited_minutes))
    summary.add_row("积分", str(report.credited_points))
    summary.add_row("时间币（分钟）/ 捐赠池", f"{report.credited_coin_minutes} / {report.pool_coin_minutes}")
    if report.ignored_columns:
        summary.add_row("未识别的列", "、".join(report.ignored_columns))
    console.print(summary)
    if report.problems:
        table = Table("行", "列", "问题", "代码")
        for p in report.problems[:_MAX_LISTED]:
            other = f"（与第 {p.other_row} 行）" if p.other_row else ""
            table.add_row(str(p.row), p.column or "", p.message_zh + other, p.code)
        console.print(table)
        if len(report.problems) > _MAX_LISTED:
            console.print(f"……共 {len(report.problems)} 个问题，仅列出前 {_MAX_LISTED} 个")
        console.print(
            "[bold red]表格有问题，未导入任何记录。[/]"
            if not report.dry_run
            else "检查完毕：请先修正上述问题。"
        )
    elif report.dry_run:
        console.print("检查通过：去掉 --dry-run 即可导入。")
    else:
        console.print(f"[bold green]已导入 {report.ready_rows} 条记录，{report.transfers} 笔记账。[/]")
