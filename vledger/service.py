"""The running service: pool, services, scheduled jobs, optional demo data, and the HTTP server."""

from __future__ import annotations

import time

import click
import uvicorn

from api.app import create_app
from api.deps import Services
from api.observability import configure_logging
from jobs.schedule import jobs
from jobs.schedule import start as start_jobs
from ledger.config import Settings
from ledger.services.audit_log import AuditLog
from ledger.services.demo import (
    DEMO_PASSWORD,
    DEMO_USERS,
    DEMO_VOLUNTEER,
    DemoExtras,
    find_demo,
    seed_demo,
)
from ledger.services.points_expiry import PointsExpiry
from ledger.store.db import open_pool
from vledger.http_protocol import PROTOCOL
from vledger.wiring import audit_keys, build_checkpoints, build_services


def run_service(
    url: str, settings: Settings, *, demo: bool, host: str | None, port: int | None, started: float
) -> None:
    """Serve until stopped; the pool and the scheduler are closed on the way out, whatever happens."""
    configure_logging()  # JSON lines from here on: the access log and everything else
    pool = open_pool(
        url,
        app_url=settings.app_database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
    )
    scheduler = None
    try:
        audit = AuditLog(pool)
        checkpoints = build_checkpoints(audit, pool, settings)
        services = build_services(pool, settings, audit_keys=audit_keys(checkpoints))
        if demo:
            _demo(services)
        expiry = PointsExpiry(pool, services.ledger, services.communities)
        scheduler = start_jobs(
            jobs(
                audit,
                checkpoints,
                checkpoint_interval_s=settings.checkpoint_interval_s,
                shop=services.shop,
                expiry=expiry,
            )
        )
        bind_host, bind_port = host or settings.host, port or settings.port
        elapsed = time.perf_counter() - started
        click.echo(f"服务就绪（启动用时 {elapsed:.2f} 秒）：http://{bind_host}:{bind_port}/health")
        click.echo(f"接口文档：http://{bind_host}:{bind_port}/docs")
        app = create_app(services)
        uvicorn.run(app, host=bind_host, port=bind_port, http=PROTOCOL, log_level="warning")
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        pool.close()


def _demo(services: Services) -> None:
    community_id = find_demo(services.communities)
    if community_id is None:
        extras = DemoExtras(services.activities, services.records, services.shop)
        community_id = seed_demo(
            services.communities, services.ledger, services.people, services.identity, extras=extras
        )
        click.echo(f"已创建演示社区「幸福社区」，社区编号 {community_id}")
    else:
        click.echo(f"演示社区已存在，社区编号 {community_id}")
    names = "、".join([name for name, _ in DEMO_USERS] + [DEMO_VOLUNTEER])
    click.echo(f"演示账号：{names}，密码均为 {DEMO_PASSWORD}")
