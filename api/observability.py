"""Prometheus metrics and structured logs for the HTTP layer.

Request latency comes from Litestar's Prometheus middleware, labelled by route template (never
the raw path). Ledger counters are ours. Logs are JSON lines with the route template, status and
duration: no bodies, no query strings, no headers — nothing that could carry personal data.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter

POSTINGS = Counter("vledger_postings_total", "Postings written through the HTTP API", ["unit"])
TRANSFERS = Counter("vledger_transfers_total", "Transfers posted through the HTTP API", ["kind", "outcome"])
# Job runs are counted by the scheduler (jobs/), which shares this process's registry.

PROMETHEUS = PrometheusConfig(
    app_name="vledger",
    prefix="vledger_http",
    group_path=True,  # the route template, so ids do not become label values
    exclude=["/metrics"],
    buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
)


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra fields are copied from ``record.fields`` if present."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


_access = logging.getLogger("vledger.access")


def log_request(method: object, route: object, status: int, started: float | None) -> None:
    """One access line: the route template (never the raw path or query), status and duration
    (None for requests that matched no route: they are refused before any work)."""
    _access.info(
        "request",
        extra={
            "fields": {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": None if started is None else round((time.perf_counter() - started) * 1000, 2),
            }
        },
    )


def access_log(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: one log line per request with the route template, status and duration."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, capture)
        finally:
            log_request(scope.get("method"), scope.get("path_template"), status, started)

    return middleware
