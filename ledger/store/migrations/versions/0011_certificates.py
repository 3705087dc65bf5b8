"""Volunteer service certificates (志愿服务证明, arts 14–17) and their supersession by corrections.

``certificate`` is one issued certificate: its number (also the public verification URL), the
volunteer (pseudonymous person and hours-account ids), the records and transfers it covers, the
period and total minutes it states, who issued it and when, the checkpoint size its proofs lead to,
and the bundle itself (canonical JSON, docs/reference/certificates.md) with its SHA-256. The bundle
holds leaves, proofs and the signed checkpoint, ids and activity texts only: nothing here is
personal data (the masked name and ID number are rendered from the encrypted profile when the
certificate is shown, so erasing the person erases them from every certificate too).
``certificate_supersession`` records that an accepted correction of a covered record superseded a
certificate. Both tables are append-only: a certificate never changes; its status is derived.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NUMBER_PATTERN = (
    "^C[1-9][0-9]{0,17}-[0-9]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$"
)

SCHEMA = f"""
CREATE TABLE certificate (
    community_id bigint NOT NULL REFERENCES community (community_id),
    number text NOT NULL CHECK (number ~ '{NUMBER_PATTERN}'),
    person_id uuid NOT NULL,
    account_id uuid NOT NULL,
    period_from date,
    period_to date,
    record_ids uuid[] NOT NULL CHECK (cardinality(record_ids) > 0),
    transfer_ids uuid[] NOT NULL CHECK (cardinality(transfer_ids) > 0),
    total_minutes bigint NOT NULL CHECK (total_minutes >= 0),
    issued_on date NOT NULL,
    issued_at timestamptz NOT NULL,
    issued_by uuid NOT NULL,
    checkpoint_size bigint NOT NULL CHECK (checkpoint_size > 0),
    bundle bytea NOT NULL,
    bundle_sha256 bytea NOT NULL CHECK (bundle_sha256 = sha256(bundle)),
    PRIMARY KEY (community_id, number),
    FOREIGN KEY (community_id, person_id) REFERENCES person (community_id, person_id),
    CHECK (period_from IS NULL OR period_to IS NULL OR period_from <= period_to)
);
CREATE INDEX certificate_by_person ON certificate (community_id, person_id, issued_at);

CREATE TABLE certificate_supersession (
    community_id bigint NOT NULL,
    number text NOT NULL,
    correction_id uuid NOT NULL,
    record_id uuid NOT NULL,
    superseded_at timestamptz NOT NULL,
    PRIMARY KEY (community_id, number, correction_id),
    FOREIGN KEY (community_id, number) REFERENCES certificate (community_id, number),
    FOREIGN KEY (community_id, correction_id) REFERENCES service_correction (community_id, correction_id)
);
"""

APPEND_ONLY = ("certificate", "certificate_supersession")


def upgrade() -> None:
    op.execute(SCHEMA)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION vledger_reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION vledger_reject_change()"
        )
    op.execute("GRANT SELECT, INSERT ON certificate, certificate_supersession TO vledger_app")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS certificate_supersession, certificate")
