"""Sign every community's checkpoint when its log has grown (rate-limited) and at least daily."""

from __future__ import annotations

import logging

from ledger.services.audit_log import AuditLog
from ledger.services.checkpoints import Checkpoints

log = logging.getLogger("vledger.jobs.checkpoints")


def publish_all(audit: AuditLog, checkpoints: Checkpoints) -> int:
    """One pass over all logs; returns how many new notes were stored. A failing log is logged
    (ids only) and does not stop the others: a signer refusal there needs an operator, not a retry."""
    published = 0
    for info in audit.logs():
        try:
            if checkpoints.publish(info.log_id) is not None:
                published += 1
        except Exception:
            log.exception("checkpoint of log %s not published", info.log_id)
    return published
