"""The job schedule, in one list, on an APScheduler background scheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import Counter

from jobs.checkpoints import publish_all
from ledger.services.audit_log import AuditLog
from ledger.services.checkpoints import Checkpoints
from ledger.services.points_expiry import PointsExpiry
from ledger.services.shop import Shop

log = logging.getLogger("vledger.jobs")

JOB_RUNS = Counter("vledger_job_runs_total", "Scheduled job runs", ["job", "outcome"])


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    run: Callable[[], object]
    every_s: int


def _counted(job: Job) -> Callable[[], None]:
    def run() -> None:
        try:
            job.run()
        except Exception:
            JOB_RUNS.labels(job=job.name, outcome="error").inc()
            log.exception("job %s failed", job.name)
        else:
            JOB_RUNS.labels(job=job.name, outcome="ok").inc()

    return run


SHOP_EXPIRY_INTERVAL_S = 600  # unclaimed orders expire within ten minutes of their pickup deadline
POINTS_EXPIRY_INTERVAL_S = 3600  # points in expired lots leave within an hour of the expiry instant


def jobs(
    audit: AuditLog,
    checkpoints: Checkpoints,
    *,
    checkpoint_interval_s: int,
    shop: Shop | None = None,
    expiry: PointsExpiry | None = None,
) -> list[Job]:
    schedule = [Job("checkpoints", lambda: publish_all(audit, checkpoints), checkpoint_interval_s)]
    if shop is not None:
        # Points-supermarket orders past their pickup deadline: hold voided, stock released.
        schedule.append(
            Job("shop_unclaimed_orders", shop.expire_unclaimed_everywhere, SHOP_EXPIRY_INTERVAL_S)
        )
    if expiry is not None:
        # Points left in lots whose expiry has passed go to each community's expiry sink.
        schedule.append(Job("points_expiry", expiry.run_everywhere, POINTS_EXPIRY_INTERVAL_S))
    return schedule


def start(schedule: list[Job]) -> BackgroundScheduler:
    """Run each job every ``every_s`` seconds; one run of a job at a time (max_instances=1)."""
    scheduler = BackgroundScheduler(timezone="Asia/Shanghai")
    for job in schedule:
        scheduler.add_job(
            _counted(job), "interval", seconds=job.every_s, id=job.name, max_instances=1, coalesce=True
        )
    scheduler.start()
    return scheduler
