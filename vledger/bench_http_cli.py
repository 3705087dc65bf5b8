"""The ``vledger bench-http`` command, registered by vledger.cli (or ``python -m vledger.bench_http_cli``)."""

from __future__ import annotations

import click

from ledger.config import get_settings


@click.command("bench-http")
@click.option("--transfers", default=5000, show_default=True, help="计时的 HTTP 记账请求数（POST）")
@click.option("--reads", default=10000, show_default=True, help="计时的 HTTP 余额查询数（GET）")
@click.option(
    "--workers", default=2, show_default=True, help="服务端工作进程数（多于 1 个时由主进程轮流分配连接）"
)
@click.option("--runs", default=1, show_default=True, help="重复次数，大于 1 时输出各列中位数")
def bench_http(transfers: int, reads: int, workers: int, runs: int) -> None:
    """通过 HTTP 运行性能基准：服务与压测客户端各在独立进程中，输出与目标的对比表。"""
    from ledger.store import migrate  # noqa: PLC0415 - heavy and only for this command
    from vledger.bench_http import run  # noqa: PLC0415
    from vledger.cli import owner_database  # noqa: PLC0415 - vledger.cli registers this command

    with owner_database(get_settings()) as url:
        migrate.upgrade(url)
        try:
            run(url, transfers=transfers, reads=reads, workers=workers, runs=runs)
        except (RuntimeError, ValueError) as exc:
            raise click.ClickException(f"基准运行失败：{exc}") from exc


if __name__ == "__main__":
    bench_http()
