#!/usr/bin/env python3
"""Prepare .venv from uv.lock (standard library only), then run the test suite or the vledger CLI."""

# This file must parse and print its version error on old Python 3 releases: no syntax newer than
# 3.6 (f-strings), and nothing but the check may run before it (annotations below are evaluated
# only when the functions are defined, i.e. after it).

import hashlib
import os
import subprocess
import sys
import typing
from pathlib import Path

if sys.version_info < (3, 11):  # noqa: UP036 - the check is for Pythons older than the project's own
    sys.stderr.write(
        f"错误：vledger 需要 Python 3.11 或更高版本，当前是 {sys.version.split()[0]}。\n"
        "请安装 Python 3.11+ 后用它运行，例如：python3.11 bootstrap.py ...\n"
    )
    sys.exit(2)

REPO = Path(__file__).resolve().parent
VENV = REPO / ".venv"
WINDOWS = os.name == "nt"
BIN = VENV / ("Scripts" if WINDOWS else "bin")
EXE = ".exe" if WINDOWS else ""
VENV_PYTHON = BIN / f"python{EXE}"
STAMP = VENV / ".bootstrap-stamp"
# Pinned so that every machine resolves uv.lock with the same tool; part of the stamp, so a bump reinstalls.
UV_VERSION = "0.13.8"

HELP = """\
用法：
  python3 bootstrap.py serve --demo        启动服务并创建演示社区（无需安装数据库）
  python3 bootstrap.py test [pytest 参数]  运行全部测试，例如：python3 bootstrap.py test -x -q
  python3 bootstrap.py <命令> [参数]        运行 vledger 的其他命令；不带参数运行时列出全部命令

首次运行会在 .venv 中按 uv.lock 安装依赖（需要一两分钟），之后立即启动。
未设置 DATABASE_URL 时使用内置的 PostgreSQL（数据在 var/ 下）；
设置了 DATABASE_URL（PostgreSQL 15+）时，服务和测试都改用那台数据库服务器。
"""


def say(message: str) -> None:
    """Progress goes to stderr so that stdout stays the command's own."""
    print(message, file=sys.stderr, flush=True)


def fail(message: str, code: int = 1) -> typing.NoReturn:
    say(f"错误：{message}")
    sys.exit(code)


def wanted_stamp() -> str:
    digest = hashlib.sha256(f"uv=={UV_VERSION}\n".encode())
    for name in ("uv.lock", "pyproject.toml"):
        digest.update((REPO / name).read_bytes())
    return digest.hexdigest()


def run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=REPO, env=env, check=False)  # noqa: S603 - fixed commands
    if result.returncode != 0:
        fail(f"{what}失败（退出码 {result.returncode}），请检查上面的输出和网络后重试。", result.returncode)


def ensure_environment() -> None:
    """Create .venv and install the locked dependencies, unless the stamp says that is done already."""
    stamp = wanted_stamp()
    if VENV_PYTHON.exists() and STAMP.exists() and STAMP.read_text().strip() == stamp:
        return  # the usual case: nothing changed since the last run, start at once
    say("正在准备运行环境（首次运行需要一两分钟）…")
    if not VENV_PYTHON.exists():
        say("正在创建虚拟环境 .venv …")
        # --clear: a .venv whose interpreter is gone (e.g. Python was upgraded) is rebuilt from scratch.
        result = subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=False)  # noqa: S603
        if result.returncode != 0:
            fail(
                "无法创建虚拟环境。Debian/Ubuntu 上请先安装 python3-venv（例如 apt install python3-venv）。",
                result.returncode,
            )
    say(f"正在安装 uv {UV_VERSION} …")
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run([*pip, f"uv=={UV_VERSION}"], "安装 uv ")
    say("正在按 uv.lock 安装依赖 …")
    env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(VENV))
    # --frozen: install exactly uv.lock, never re-resolve; --inexact: keep anything else already installed.
    run([str(BIN / f"uv{EXE}"), "sync", "--frozen", "--inexact", "--quiet"], "安装依赖", env)
    STAMP.write_text(stamp + "\n")
    say("运行环境已就绪。")


def replace_process(argv: list[str], env: dict[str, str] | None = None) -> typing.NoReturn:
    """Become the command, so that Ctrl-C and service managers' signals reach it directly."""
    sys.stdout.flush()
    sys.stderr.flush()
    if WINDOWS:  # os.exec* on Windows starts a new process and exits; waiting keeps the exit code
        sys.exit(subprocess.call(argv, env=env))  # noqa: S603
    if env is None:
        os.execv(argv[0], argv)  # noqa: S606 - argv[0] is our venv's own executable
    os.execve(argv[0], argv, env)  # noqa: S606


def main(args: list[str]) -> None:
    if args[:1] in (["-h"], ["--help"]):
        print(HELP, end="")
        return
    ensure_environment()
    if args[:1] == ["test"]:
        # pytest reads its options from pyproject.toml, found by walking up from the working directory.
        if Path.cwd() != REPO and REPO not in Path.cwd().parents:
            os.chdir(REPO)
        replace_process([str(VENV_PYTHON), "-m", "pytest", *args[1:]])
    cli = BIN / f"vledger{EXE}"
    if not cli.exists():
        fail(f"找不到 {cli}，请删除 {STAMP} 后重新运行以重新安装。")
    # Keep the embedded database in the repository's var/ whatever directory this was started from.
    env = dict(os.environ)
    env.setdefault("VLEDGER_DATA_DIR", str(REPO / "var"))
    replace_process([str(cli), *args], env)


if __name__ == "__main__":
    main(sys.argv[1:])
