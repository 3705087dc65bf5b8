"""Service records (志愿服务记录): activities, records with their state machine, events, corrections.

``activity`` holds what each of its records states under art 7 besides the volunteer's own time:
name, dates, place, content, organising unit, and the leader (by user and person id, never by
name). ``service_record`` is one volunteer's service on one date; its art 7 fields never change
(a trigger refuses it for every role), only its state and what posting it credited. Who did each
step, and when, is kept twice: on the row (once set, never changed) and as an append-only
``service_record_event``. ``service_correction`` is a volunteer's request to correct a posted
record; accepting it reverses the posted transfer and posts a new one (both in the ledger, which
stays append-only). Nothing here holds personal data beyond pseudonymous ids; reasons are free
text for staff.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

RECORD_STATES = "('draft', 'submitted', 'verified', 'posted', 'rejected')"
EVENT_KINDS = (
    "('created', 'submitted', 'verified', 'posted', 'rejected', 'deadline_overridden',"
    " 'correction_filed', 'correction_accepted', 'correction_rejected')"
)

SCHEMA = f"""
CREATE TABLE activity (
    community_id bigint NOT NULL REFERENCES community (community_id),
    activity_id uuid NOT NULL,
    name text NOT NULL,
    start_date date NOT NULL,
    end_date date NOT NULL,
    place text NOT NULL,
    content text NOT NULL,
    organising_unit text NOT NULL,
    leader_user_id uuid,
    leader_person_id uuid,
    created_by uuid,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (community_id, activity_id),
    FOREIGN KEY (community_id, leader_person_id) REFERENCES person (community_id, person_id),
    CHECK (end_date >= start_date)
);
CREATE INDEX activity_by_end_date ON activity (community_id, end_date);

CREATE TABLE service_record (
    community_id bigint NOT NULL,
    record_id uuid NOT NULL,
    activity_id uuid NOT NULL,
    person_id uuid NOT NULL,
    service_date date NOT NULL,
    start_time time NOT NULL,
    end_time time NOT NULL,
    place text NOT NULL,
    content text NOT NULL,
    served_minutes integer NOT NULL CHECK (served_minutes BETWEEN 1 AND 1440),
    deadline date NOT NULL,
    state text NOT NULL DEFAULT 'draft' CHECK (state IN {RECORD_STATES}),
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL,
    submitted_by uuid,
    submitted_at timestamptz,
    verified_by uuid,
    verified_at timestamptz,
    posted_by uuid,
    posted_at timestamptz,
    rejected_by uuid,
    rejected_at timestamptz,
    rejection_reason text,
    override_by uuid,
    override_at timestamptz,
    override_reason text,
    overdue boolean NOT NULL DEFAULT false,
    -- The rule-settings version whose numbers the posting used, and what it credited (current
    -- values: an accepted correction replaces them; the ledger keeps every transfer).
    settings_version integer,
    transfer_id uuid,
    credited_minutes bigint NOT NULL DEFAULT 0 CHECK (credited_minutes >= 0),
    credited_points bigint NOT NULL DEFAULT 0 CHECK (credited_points >= 0),
    earned_coin_minutes bigint NOT NULL DEFAULT 0,
    credited_coin_minutes bigint NOT NULL DEFAULT 0 CHECK (credited_coin_minutes >= 0),
    pool_coin_minutes bigint NOT NULL DEFAULT 0 CHECK (pool_coin_minutes >= 0),
    PRIMARY KEY (community_id, record_id),
    FOREIGN KEY (community_id, activity_id) REFERENCES activity (community_id, activity_id),
    FOREIGN KEY (community_id, person_id) REFERENCES person (community_id, person_id),
    CHECK (end_time > start_time),
    CHECK ((submitted_at IS NOT NULL) = (state <> 'draft')),
    CHECK ((verified_at IS NOT NULL) = (state IN ('verified', 'posted'))),
    CHECK ((posted_at IS NOT NULL) = (state = 'posted')),
    CHECK ((settings_version IS NOT NULL) = (state = 'posted')),
    CHECK ((rejected_at IS NOT NULL) = (state = 'rejected')),
    CHECK ((rejected_at IS NULL) = (rejection_reason IS NULL)),
    CHECK ((override_at IS NULL) = (override_reason IS NULL)),
    CHECK (NOT overdue OR (state = 'posted' AND override_at IS NOT NULL)),
    CHECK (transfer_id IS NULL OR state = 'posted'),
    CHECK (state = 'posted' OR (credited_minutes = 0 AND credited_points = 0 AND earned_coin_minutes = 0)),
    CHECK (earned_coin_minutes >= credited_coin_minutes + pool_coin_minutes)
);
CREATE INDEX service_record_by_person_day ON service_record (community_id, person_id, service_date);
CREATE INDEX service_record_by_activity ON service_record (community_id, activity_id, person_id);
CREATE UNIQUE INDEX service_record_transfer_uq ON service_record (community_id, transfer_id) WHERE transfer_id IS NOT NULL;

-- Art 7 fields and the creator never change; each step, once taken, stays as taken; states move
-- only along the state machine (ledger/domain/service_records.py).
CREATE FUNCTION vledger_service_record_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.community_id, NEW.record_id, NEW.activity_id, NEW.person_id, NEW.service_date, NEW.start_time,
        NEW.end_time, NEW.place, NEW.content, NEW.served_minutes, NEW.deadline, NEW.created_by, NEW.created_at)
       IS DISTINCT FROM
       (OLD.community_id, OLD.record_id, OLD.activity_id, OLD.person_id, OLD.service_date, OLD.start_time,
        OLD.end_time, OLD.place, OLD.content, OLD.served_minutes, OLD.deadline, OLD.created_by, OLD.created_at)
    THEN
        RAISE EXCEPTION 'a service record''s art 7 fields never change' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (OLD.state, NEW.state) NOT IN (('draft', 'draft'), ('draft', 'submitted'), ('submitted', 'submitted'),
        ('submitted', 'verified'), ('submitted', 'rejected'), ('verified', 'verified'), ('verified', 'posted'),
        ('posted', 'posted'))
    THEN
        RAISE EXCEPTION 'a service record in state % cannot become %', OLD.state, NEW.state
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (OLD.submitted_at IS NOT NULL
            AND (NEW.submitted_by, NEW.submitted_at) IS DISTINCT FROM (OLD.submitted_by, OLD.submitted_at))
       OR (OLD.verified_at IS NOT NULL
            AND (NEW.verified_by, NEW.verified_at) IS DISTINCT FROM (OLD.verified_by, OLD.verified_at))
       OR (OLD.posted_at IS NOT NULL
            AND (NEW.posted_by, NEW.posted_at, NEW.overdue, NEW.settings_version)
                IS DISTINCT FROM (OLD.posted_by, OLD.posted_at, OLD.overdue, OLD.settings_version))
       OR (OLD.override_at IS NOT NULL
            AND (NEW.override_by, NEW.override_at, NEW.override_reason)
                IS DISTINCT FROM (OLD.override_by, OLD.override_at, OLD.override_reason))
    THEN
        RAISE EXCEPTION 'a service record''s completed steps never change' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER service_record_guard BEFORE UPDATE ON service_record
    FOR EACH ROW EXECUTE FUNCTION vledger_service_record_guard();

CREATE TABLE service_record_event (
    community_id bigint NOT NULL,
    event_id uuid NOT NULL,
    record_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN {EVENT_KINDS}),
    actor_id uuid,
    at timestamptz NOT NULL,
    detail jsonb NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (community_id, event_id),
    FOREIGN KEY (community_id, record_id) REFERENCES service_record (community_id, record_id)
);
CREATE INDEX service_record_event_by_record ON service_record_event (community_id, record_id, at);

CREATE TABLE service_correction (
    community_id bigint NOT NULL,
    correction_id uuid NOT NULL,
    record_id uuid NOT NULL,
    start_time time NOT NULL,
    end_time time NOT NULL,
    served_minutes integer NOT NULL CHECK (served_minutes BETWEEN 1 AND 1440),
    reason text NOT NULL,
    filed_by uuid NOT NULL,
    filed_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'filed' CHECK (state IN ('filed', 'accepted', 'rejected')),
    decided_by uuid,
    decided_at timestamptz,
    rejection_reason text,
    -- Failed acceptances so far: each attempt uses its own ledger idempotency keys, so an attempt
    -- refused by the ledger (points already spent) does not block a later one.
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    reversal_transfer_id uuid,
    new_transfer_id uuid,
    previous_credited_minutes bigint,
    credited_minutes bigint,
    PRIMARY KEY (community_id, correction_id),
    FOREIGN KEY (community_id, record_id) REFERENCES service_record (community_id, record_id),
    CHECK (end_time > start_time),
    CHECK ((decided_at IS NULL) = (state = 'filed')),
    CHECK ((rejection_reason IS NOT NULL) = (state = 'rejected')),
    CHECK ((credited_minutes IS NOT NULL) = (state = 'accepted')),
    CHECK ((previous_credited_minutes IS NOT NULL) = (state = 'accepted')),
    CHECK (state = 'accepted' OR (reversal_transfer_id IS NULL AND new_transfer_id IS NULL))
);
-- At most one undecided correction per record.
CREATE UNIQUE INDEX service_correction_open_uq ON service_correction (community_id, record_id) WHERE state = 'filed';
CREATE INDEX service_correction_by_record ON service_correction (community_id, record_id, filed_at);

CREATE FUNCTION vledger_service_correction_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.community_id, NEW.correction_id, NEW.record_id, NEW.start_time, NEW.end_time, NEW.served_minutes,
        NEW.reason, NEW.filed_by, NEW.filed_at)
       IS DISTINCT FROM
       (OLD.community_id, OLD.correction_id, OLD.record_id, OLD.start_time, OLD.end_time, OLD.served_minutes,
        OLD.reason, OLD.filed_by, OLD.filed_at)
       OR OLD.state <> 'filed' OR NEW.attempt < OLD.attempt
    THEN
        RAISE EXCEPTION 'a correction request is decided once and never edited'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER service_correction_guard BEFORE UPDATE ON service_correction
    FOR EACH ROW EXECUTE FUNCTION vledger_service_correction_guard();
"""

APPEND_ONLY = ("activity", "service_record_event")
NO_DELETE = ("service_record", "service_correction")

RECORD_UPDATABLE = (
    "state, submitted_by, submitted_at, verified_by, verified_at, posted_by, posted_at, rejected_by,"
    " rejected_at, rejection_reason, override_by, override_at, override_reason, overdue, settings_version,"
    " transfer_id, credited_minutes, credited_points, earned_coin_minutes, credited_coin_minutes,"
    " pool_coin_minutes"
)
CORRECTION_UPDATABLE = (
    "state, decided_by, decided_at, rejection_reason, attempt, reversal_transfer_id, new_transfer_id,"
    " previous_credited_minutes, credited_minutes"
)


def upgrade() -> None:
    op.execute(SCHEMA)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION vledger_reject_change()"
        )
    for table in NO_DELETE:
        op.execute(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION vledger_reject_change()"
        )
    for table in APPEND_ONLY + NO_DELETE:
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION vledger_reject_change()"
        )
    op.execute(
        "GRANT SELECT, INSERT ON activity, service_record, service_record_event, service_correction"
        " TO vledger_app"
    )
    op.execute(f"GRANT UPDATE ({RECORD_UPDATABLE}) ON service_record TO vledger_app")
    op.execute(f"GRANT UPDATE ({CORRECTION_UPDATABLE}) ON service_correction TO vledger_app")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS service_correction, service_record_event, service_record, activity")
    op.execute("DROP FUNCTION IF EXISTS vledger_service_record_guard()")
    op.execute("DROP FUNCTION IF EXISTS vledger_service_correction_guard()")
