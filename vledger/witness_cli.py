"""``vledger witness``: create a witness key and run a C2SP tlog-witness server as its own process."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import NoReturn

import click

from ledger.audit.cosignature import WitnessVerifier
from ledger.audit.note import NoteError, check_key_name
from ledger.audit.signer import SignerStateError, generate_key_file
from ledger.audit.witness import Witness, make_server

_PATH = click.Path(dir_okay=False, path_type=Path)


def _fail(message: str) -> NoReturn:
    click.echo(f"错误：{message}", err=True)
    raise click.exceptions.Exit(1)


def _parse_trust(values: tuple[str, ...]) -> dict[str, list[str]]:
    trusted: dict[str, list[str]] = {}
    for value in values:
        origin, sep, vkey = value.partition("=")
        if not sep or not origin or not vkey:
            raise click.BadParameter(f"应为 日志标识=公钥 的形式：{value}", param_hint="--trust")
        trusted.setdefault(origin, []).append(vkey)
    return trusted


@click.group()
def witness() -> None:
    """见证服务（C2SP tlog-witness）：核对各社区日志检查点的一致性并副署。"""


@witness.command()
@click.option("--name", required=True, help="见证人名称，即公钥名称，如 witness.example.org/w1")
@click.option(
    "--key", "key_path", required=True, type=_PATH, help="要新建的私钥文件（权限 0600，不会覆盖已有文件）"
)
def init(name: str, key_path: Path) -> None:
    """生成见证人私钥，并输出其公钥（副署公钥，类型 0x04）。"""
    try:
        check_key_name(name, "witness name")
        signer = generate_key_file(key_path, name)
    except NoteError:
        _fail("见证人名称不能为空，也不能包含空白字符或“+”")
    except FileExistsError:
        _fail(f"私钥文件已存在，未作改动：{key_path}")
    click.echo(f"已生成见证人私钥：{key_path}（请备份，切勿外传）", err=True)
    click.echo("见证人公钥如下，请提供给日志运营方和审计方：", err=True)
    # Only the vkey goes to standard output, so scripts can capture it.
    click.echo(WitnessVerifier.of(signer).vkey())


@witness.command()
@click.option("--name", required=True, help="见证人名称（须与私钥中的名称一致）")
@click.option("--key", "key_path", required=True, type=_PATH, help="见证人私钥文件")
@click.option(
    "--state",
    "state_path",
    required=True,
    type=_PATH,
    help="见证状态文件（记录各日志最新副署的大小与根哈希）",
)
@click.option(
    "--trust",
    multiple=True,
    required=True,
    metavar="ORIGIN=VKEY",
    help="信任的日志及其公钥，可重复；密钥轮换期间同一日志可给出新旧两个公钥",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="监听地址")
@click.option("--port", default=7380, show_default=True, type=int, help="监听端口")
def serve(name: str, key_path: Path, state_path: Path, trust: tuple[str, ...], host: str, port: int) -> None:
    """启动见证服务：POST /add-checkpoint。"""
    try:
        the_witness = Witness(name, key_path, state_path, _parse_trust(trust))
    except SignerStateError as exc:
        _fail(f"无法读取私钥或状态文件：{exc}")
    except NoteError as exc:
        _fail(f"日志公钥无效：{exc}")
    try:
        server = make_server(the_witness, host, port)
    except OSError as exc:
        _fail(f"无法监听 {host}:{port}：{exc}")
    # SIGTERM becomes SystemExit so that the server socket is closed cleanly.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    click.echo(f"见证服务已启动：http://{host}:{port}/add-checkpoint")
    click.echo(f"见证人公钥：{the_witness.verifier_key()}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        click.echo("见证服务已停止")


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)
