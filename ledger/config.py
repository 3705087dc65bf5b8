"""Settings for every process (service, jobs, CLI), read once from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All configuration in one place; environment variables use the ``VLEDGER_`` prefix.

    ``DATABASE_URL`` is also honoured without the prefix because that is what operators and CI set.
    """

    model_config = SettingsConfigDict(env_prefix="VLEDGER_", extra="ignore")

    # Owner connection: runs migrations. With no URL an embedded PostgreSQL is started under data_dir.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "VLEDGER_DATABASE_URL")
    )
    # Runtime connection (role vledger_app). Unset: the owner's server, logged in as vledger_app with
    # no password, which suits servers that trust local connections (the embedded one does).
    app_database_url: str | None = None
    # Database created on the embedded server (a DATABASE_URL names its own database).
    embedded_database: str = "vledger"
    data_dir: Path = Path("var")
    pool_min_size: int = 2
    pool_max_size: int = 20
    log_origin_prefix: str = "vledger.local"
    # Hot system accounts (issuance, sinks) spread their balance over this many rows to avoid lock queues.
    hot_account_buckets: int = 8
    host: str = "127.0.0.1"
    port: int = 8000
    # Where the public reaches the service: printed certificates carry a QR code to
    # <public_base_url>/verify/certificates/<number>. Set it to the public https address in production.
    public_base_url: str = "http://127.0.0.1:8000"

    # Personal-data encryption (ledger.privacy). Master keys: "kid:base64,kid:base64", the first one
    # wraps new data keys, the others only unwrap (rotation). The blind-index key is base64 too.
    # Unset: generated once into ``<data_dir>/keys.json`` (mode 0600), which suits the demo only.
    master_keys: str | None = None
    blind_index_key: str | None = None

    # Checkpoint signing (ledger.audit.signer): keys and the signer's own state live outside the
    # database. Unset: under <data_dir>/signer/. Witnesses: "vkey@url" entries, comma-separated.
    signer_key_dir: Path | None = None
    signer_state_path: Path | None = None
    witnesses: str = ""
    checkpoint_interval_s: int = 30

    # Identity (ledger.services.identity).
    session_ttl_s: int = 8 * 3600
    login_attempts_per_minute: int = 10


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
