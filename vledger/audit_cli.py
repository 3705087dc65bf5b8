"""``vledger audit``: export a community's log, and verify an export or a certificate bundle offline with
trusted keys only."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ledger.audit.certificate_check import verify_certificate_bundle
from ledger.audit.cosignature import WitnessVerifier, parse_witness_key
from ledger.audit.note import NoteError, Verifier, parse_verifier_key
from ledger.audit.verifier import Progress as ProgressCallback
from ledger.audit.verifier import VerifyOptions, verify_export
from ledger.audit.verify_notes import HistoricKey, TrustedKeys, parse_key_history
from ledger.config import get_settings
from ledger.domain.errors import LedgerError
from ledger.store import migrate
from ledger.store.db import open_pool

__all__ = ["audit"]


def _fail(message: str) -> NoReturn:
    click.echo(f"错误：{message}", err=True)
    raise click.exceptions.Exit(2)


@click.group()
def audit() -> None:
    """审计日志：导出社区日志，并用受信任的公钥离线校验导出文件。"""


@audit.command("export")
@click.argument("log_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def export_cmd(log_id: int, file: Path) -> None:
    """把社区日志 LOG_ID 导出到 FILE：叶子、签名检查点与各账户余额（同一快照）。

    文件名以 .gz 结尾时用 gzip 压缩。文件写完后才出现，不会留下半个文件。
    """
    from ledger.services.log_export import export_log  # noqa: PLC0415 - only this command needs it
    from vledger.cli import owner_database  # noqa: PLC0415 - vledger.cli registers this group

    settings = get_settings()
    with owner_database(settings) as url:
        migrate.upgrade(url)
        pool = open_pool(
            url, app_url=settings.app_database_url, min_size=1, max_size=2, name="vledger-export"
        )
        try:
            summary = export_log(pool, log_id, file)
        except LedgerError:
            _fail(f"社区日志 {log_id} 不存在")
        finally:
            pool.close()
    click.echo(
        f"已导出日志 {summary.log_id}（{summary.origin}）：{summary.leaves} 个叶子、"
        f"{summary.checkpoints} 个签名检查点、{summary.balances} 个账户余额 → {summary.path}"
    )


def _log_key(text: str) -> Verifier:
    try:
        return parse_verifier_key(text)
    except NoteError as exc:
        raise click.BadParameter(f"日志公钥无效：{exc}", param_hint="--log-key") from None


def _witness_keys(texts: tuple[str, ...]) -> tuple[WitnessVerifier, ...]:
    try:
        return tuple(parse_witness_key(t) for t in texts)
    except NoteError as exc:
        raise click.BadParameter(f"见证者公钥无效：{exc}", param_hint="--witness-key") from None


def _history(path: Path | None) -> tuple[HistoricKey, ...]:
    if path is None:
        return ()
    try:
        return parse_key_history(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"密钥历史文件无效：{exc}", param_hint="--log-key-history") from None


@contextmanager
def _progress() -> Iterator[ProgressCallback | None]:
    """A progress bar on stderr when it is a terminal; nothing otherwise (pipes, CI, logs)."""
    if not sys.stderr.isatty():
        yield None
        return
    columns = (TextColumn("校验叶子"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("leaves", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@audit.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--log-key", required=True, help="受信任的日志公钥（name+hex8+base64），只信任命令行给出的公钥")
@click.option(
    "--log-key-history",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=(
        '已退役日志公钥（JSON：{"keys": [{"vkey": ..., "retired_at_size": N}]}），'
        "各自只对不超过退役大小的检查点有效"
    ),
)
@click.option("--witness-key", "witness_keys", multiple=True, help="受信任的见证者公钥，可多次给出")
@click.option(
    "--quorum",
    type=click.IntRange(min=0),
    default=None,
    help="最新检查点至少需要的有效见证者副署数（给出见证者公钥时默认 1，否则 0）",
)
@click.option(
    "--pin", type=click.Path(dir_okay=False, path_type=Path), help="上次校验通过时记录的状态文件（JSON）"
)
@click.option("--write-pin", is_flag=True, help="校验通过后写入或更新 --pin 状态文件")
@click.option(
    "--max-age-hours", type=click.FloatRange(min=0), default=None, help="最新检查点的最长允许时间（小时）"
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="另把 JSON 报告写入此文件",
)
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="校验进程数（默认大文件按 CPU 数）")
def verify_cmd(
    file: Path,
    log_key: str,
    log_key_history: Path | None,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    pin: Path | None,
    write_pin: bool,
    max_age_hours: float | None,
    report_path: Path | None,
    jobs: int | None,
) -> None:
    """离线校验导出文件 FILE，在标准输出打印 JSON 报告。

    退出码：0 通过；1 发现篡改；2 输入格式错误；3 未满足策略（未签名的叶子、见证不足、检查点过旧）。
    """
    if write_pin and pin is None:
        raise click.UsageError("--write-pin 需要同时给出 --pin")
    witnesses = _witness_keys(witness_keys)
    needed = (1 if witnesses else 0) if quorum is None else quorum
    if needed > len(witnesses):
        raise click.BadParameter(
            f"需要 {needed} 个见证者副署，但只给出了 {len(witnesses)} 个见证者公钥", param_hint="--quorum"
        )
    keys = TrustedKeys((_log_key(log_key),), _history(log_key_history), witnesses)
    options = VerifyOptions(
        keys,
        quorum=needed,
        pin_path=pin,
        write_pin=write_pin,
        max_age=None if max_age_hours is None else timedelta(hours=max_age_hours),
        jobs=jobs,
    )
    with _progress() as progress:
        report = verify_export(file, options, progress)
    text = json.dumps(report.as_json(), ensure_ascii=False, indent=2)
    if report_path is not None:
        report_path.write_text(text + "\n", encoding="utf-8")
    click.echo(text)
    raise click.exceptions.Exit(report.exit_code)


@audit.command("verify-certificate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--log-key", required=True, help="受信任的日志公钥（name+hex8+base64），只信任命令行给出的公钥")
@click.option(
    "--log-key-history",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="已退役日志公钥（JSON，格式同 verify），各自只对不超过退役大小的检查点有效",
)
@click.option("--witness-key", "witness_keys", multiple=True, help="受信任的见证者公钥，可多次给出")
@click.option(
    "--quorum",
    type=click.IntRange(min=0),
    default=None,
    help="检查点至少需要的有效见证者副署数（给出见证者公钥时默认 1，否则 0）",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="另把 JSON 报告写入此文件",
)
def verify_certificate_cmd(
    file: Path,
    log_key: str,
    log_key_history: Path | None,
    witness_keys: tuple[str, ...],
    quorum: int | None,
    report_path: Path | None,
) -> None:
    """离线校验志愿服务证明的证据包 FILE（JSON），在标准输出打印 JSON 报告。

    校验检查点签名与见证副署、每个叶子的哈希与包含性证明、叶子属于本社区日志且合计等于证明所载时长，
    并报告证明是否已被更正取代。

    退出码：0 通过；1 发现篡改；2 输入格式错误；3 未满足策略（见证不足、已被取代）。
    """
    witnesses = _witness_keys(witness_keys)
    needed = (1 if witnesses else 0) if quorum is None else quorum
    if needed > len(witnesses):
        raise click.BadParameter(
            f"需要 {needed} 个见证者副署，但只给出了 {len(witnesses)} 个见证者公钥", param_hint="--quorum"
        )
    keys = TrustedKeys((_log_key(log_key),), _history(log_key_history), witnesses)
    report = verify_certificate_bundle(file.read_bytes(), keys, quorum=needed)
    text = json.dumps(report.as_json(), ensure_ascii=False, indent=2)
    if report_path is not None:
        report_path.write_text(text + "\n", encoding="utf-8")
    click.echo(text)
    raise click.exceptions.Exit(report.exit_code)
