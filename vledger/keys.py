"""``vledger keys``: generate a master or blind-index key, and rotate person data keys to a new master key."""

from __future__ import annotations

from typing import NoReturn

import click

from ledger.config import get_settings
from ledger.privacy import Keyring, KeyringError, encode_key, generate_key, rewrap_all
from ledger.store import migrate
from ledger.store.db import open_pool

_KEY_ID_HELP = "同时输出密钥编号，格式为 编号:密钥，可直接加入 VLEDGER_MASTER_KEYS"


def _fail(message: str) -> NoReturn:
    click.echo(f"错误：{message}", err=True)
    raise click.exceptions.Exit(1)


@click.group()
def keys() -> None:
    """个人信息加密密钥：生成密钥、轮换主密钥。"""


@keys.command()
@click.option("--key-id", default=None, help=_KEY_ID_HELP)
def generate(key_id: str | None) -> None:
    """输出一个新的随机密钥（32 字节，base64）。"""
    encoded = encode_key(generate_key())
    if key_id is None:
        click.echo(encoded)
        return
    try:
        Keyring({key_id: generate_key()}, generate_key())  # validates the id only
    except KeyringError:
        _fail("密钥编号只能包含字母、数字、点、下划线和连字符（1–32 位，以字母或数字开头）")
    click.echo(f"{key_id}:{encoded}")


@keys.command()
def rotate() -> None:
    """用 VLEDGER_MASTER_KEYS 中的第一个主密钥重新封装全部人员数据密钥。

    旧主密钥须仍列在其后，轮换完成后方可移除。
    """
    settings = get_settings()
    if not settings.master_keys or not settings.blind_index_key:
        _fail("请先设置 VLEDGER_MASTER_KEYS 与 VLEDGER_BLIND_INDEX_KEY（新主密钥放在第一位）")
    try:
        keyring = Keyring.from_settings(settings)
    except KeyringError as exc:
        # The message names setting and key ids only, never key material (English, for operators).
        _fail(f"密钥配置有误：{exc}")
    # Imported here: vledger.cli registers this group, so a top-level import would be circular.
    from vledger.cli import owner_database  # noqa: PLC0415

    with owner_database(settings) as url:
        migrate.upgrade(url)
        pool = open_pool(url, app_url=settings.app_database_url, min_size=1, max_size=2, name="vledger-keys")
        try:
            count = rewrap_all(pool, keyring)
        except KeyringError as exc:
            _fail(f"有数据密钥由未配置的主密钥封装，请将旧主密钥保留在 VLEDGER_MASTER_KEYS 中：{exc}")
        finally:
            pool.close()
    click.echo(f"已用主密钥 {keyring.active_key_id} 重新封装 {count} 个数据密钥")
