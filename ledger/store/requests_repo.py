"""SQL for the idempotency of non-ledger POSTs (table api_idempotency, migration 0005)."""

from __future__ import annotations

CLAIM = """
INSERT INTO api_idempotency (user_id, key, route, request_hash) VALUES (%s, %s, %s, %s)
ON CONFLICT DO NOTHING RETURNING 1
"""
READ = """
SELECT route, request_hash, status_code, response FROM api_idempotency WHERE user_id = %s AND key = %s
"""
FINISH = "UPDATE api_idempotency SET status_code = %s, response = %s WHERE user_id = %s AND key = %s"
RELEASE = "DELETE FROM api_idempotency WHERE user_id = %s AND key = %s AND status_code IS NULL"
