"""Time bank (时间银行): exchanges and their events, relations, hardship flags, the region switch.

``timebank_exchange`` is one service between two members paid in time coins, in the recipient's
community (its tenant); the provider may belong to another community of the same region
(通存通兑), so the provider is named by (community, person) without a foreign key, which would not
lead with the row's community_id. A guard trigger keeps the request's terms fixed and lets the
state move only along the state machine (ledger/domain/timebank.py); each step is also an
append-only ``timebank_exchange_event`` with its actor. ``person_relation`` records who is whose
relative or friend (ids only, the pair stored in id order, one current relation per pair);
``hardship_flag`` a person's hardship flag with its dates. Both are inserted and later ended or
revoked once; never deleted.

Cross-community exchange is switched per region: ``region.cross_community`` (migration 0001) is
the switch, which the runtime role may now update, and ``region_cross_community_event`` keeps who
switched it when. Regions are reference tables, so that history is keyed by region like them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATES = "('requested', 'matched', 'in_service', 'confirmed', 'settled', 'cancelled', 'disputed')"
EVENT_KINDS = (
    "('requested', 'matched', 'started', 'confirmed', 'settled', 'cancelled', 'disputed', 'resolved')"
)
RELATION_KINDS = "('parent', 'child', 'spouse', 'grandparent', 'grandchild', 'other_relative', 'friend')"
# The state machine's transitions, (from, to), as the guard trigger checks them.
TRANSITIONS = (
    "(('requested', 'matched'), ('requested', 'cancelled'), ('matched', 'in_service'),"
    " ('matched', 'cancelled'), ('in_service', 'confirmed'), ('in_service', 'disputed'),"
    " ('confirmed', 'settled'), ('confirmed', 'disputed'), ('disputed', 'settled'), ('disputed', 'cancelled'))"
)

SCHEMA = f"""
CREATE TABLE timebank_exchange (
    community_id bigint NOT NULL REFERENCES community (community_id),
    exchange_id uuid NOT NULL,
    recipient_person_id uuid NOT NULL,
    service text NOT NULL,
    -- The terms, fixed at the request by the settings version in force that day.
    pricing text NOT NULL CHECK (pricing IN ('per_hour', 'per_item')),
    settings_version integer NOT NULL CHECK (settings_version >= 0),
    rate_coin_minutes_per_hour integer CHECK (rate_coin_minutes_per_hour >= 0),
    planned_minutes integer CHECK (planned_minutes BETWEEN 1 AND 1440),
    item_price_coin_minutes bigint CHECK (item_price_coin_minutes > 0),
    hold_coin_minutes bigint NOT NULL CHECK (hold_coin_minutes >= 0),
    hold_transfer_id uuid,
    state text NOT NULL DEFAULT 'requested' CHECK (state IN {STATES}),
    provider_community_id bigint,
    provider_person_id uuid,
    served_minutes integer CHECK (served_minutes BETWEEN 1 AND 1440),
    -- What settlement moved: charged = credited (to the provider) + pool (over the provider's cap).
    charged_coin_minutes bigint CHECK (charged_coin_minutes >= 0),
    credited_coin_minutes bigint CHECK (credited_coin_minutes >= 0),
    pool_coin_minutes bigint CHECK (pool_coin_minutes >= 0),
    release_transfer_id uuid,
    payment_transfer_id uuid,
    credit_transfer_id uuid,
    resolution text CHECK (resolution IN ('settle', 'cancel')),
    requested_by uuid NOT NULL,
    requested_at timestamptz NOT NULL,
    matched_at timestamptz,
    started_at timestamptz,
    confirmed_at timestamptz,
    disputed_at timestamptz,
    resolved_at timestamptz,
    settled_at timestamptz,
    cancelled_at timestamptz,
    PRIMARY KEY (community_id, exchange_id),
    FOREIGN KEY (community_id, recipient_person_id) REFERENCES person (community_id, person_id),
    CHECK ((pricing = 'per_hour') = (rate_coin_minutes_per_hour IS NOT NULL)),
    CHECK (pricing <> 'per_hour' OR planned_minutes IS NOT NULL),
    CHECK ((pricing = 'per_item') = (item_price_coin_minutes IS NOT NULL)),
    CHECK ((hold_transfer_id IS NULL) = (hold_coin_minutes = 0)),
    CHECK ((provider_person_id IS NULL) = (provider_community_id IS NULL)),
    CHECK ((provider_person_id IS NULL) = (matched_at IS NULL)),
    CHECK (state IN ('requested', 'cancelled') OR matched_at IS NOT NULL),
    CHECK (state NOT IN ('in_service', 'confirmed') OR started_at IS NOT NULL),
    CHECK (state <> 'confirmed' OR confirmed_at IS NOT NULL),
    CHECK (state <> 'disputed' OR (disputed_at IS NOT NULL AND resolved_at IS NULL)),
    CHECK ((resolved_at IS NULL) = (resolution IS NULL)),
    CHECK (resolved_at IS NULL OR disputed_at IS NOT NULL),
    CHECK ((settled_at IS NOT NULL) = (state = 'settled')),
    CHECK ((cancelled_at IS NOT NULL) = (state = 'cancelled')),
    CHECK (state <> 'settled' OR confirmed_at IS NOT NULL OR resolution = 'settle'),
    CHECK ((charged_coin_minutes IS NOT NULL) = (state = 'settled')),
    CHECK ((credited_coin_minutes IS NOT NULL) = (state = 'settled')),
    CHECK ((pool_coin_minutes IS NOT NULL) = (state = 'settled')),
    CHECK (charged_coin_minutes = credited_coin_minutes + pool_coin_minutes),
    CHECK (charged_coin_minutes <= hold_coin_minutes),
    CHECK (pricing <> 'per_hour' OR served_minutes IS NULL OR served_minutes <= planned_minutes),
    CHECK ((release_transfer_id IS NOT NULL) = (hold_transfer_id IS NOT NULL AND state IN ('settled', 'cancelled'))),
    CHECK ((payment_transfer_id IS NOT NULL) = (state = 'settled' AND charged_coin_minutes > 0)),
    CHECK (credit_transfer_id IS NULL OR (payment_transfer_id IS NOT NULL AND provider_community_id <> community_id))
);
CREATE INDEX timebank_exchange_by_recipient ON timebank_exchange (community_id, recipient_person_id, requested_at);

-- A request's terms never change; the state moves only along the state machine; every step's
-- instant and the provider, once set, stay as set.
CREATE FUNCTION vledger_timebank_exchange_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.community_id, NEW.exchange_id, NEW.recipient_person_id, NEW.service, NEW.pricing,
        NEW.settings_version, NEW.rate_coin_minutes_per_hour, NEW.planned_minutes, NEW.item_price_coin_minutes,
        NEW.hold_coin_minutes, NEW.hold_transfer_id, NEW.requested_by, NEW.requested_at)
       IS DISTINCT FROM
       (OLD.community_id, OLD.exchange_id, OLD.recipient_person_id, OLD.service, OLD.pricing,
        OLD.settings_version, OLD.rate_coin_minutes_per_hour, OLD.planned_minutes, OLD.item_price_coin_minutes,
        OLD.hold_coin_minutes, OLD.hold_transfer_id, OLD.requested_by, OLD.requested_at)
    THEN
        RAISE EXCEPTION 'a time-bank request''s terms never change' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (OLD.state, NEW.state) NOT IN {TRANSITIONS} THEN
        RAISE EXCEPTION 'a time-bank exchange in state % cannot become %', OLD.state, NEW.state
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (OLD.matched_at IS NOT NULL AND (NEW.matched_at, NEW.provider_community_id, NEW.provider_person_id)
            IS DISTINCT FROM (OLD.matched_at, OLD.provider_community_id, OLD.provider_person_id))
       OR (OLD.started_at IS NOT NULL AND NEW.started_at IS DISTINCT FROM OLD.started_at)
       OR (OLD.confirmed_at IS NOT NULL AND NEW.confirmed_at IS DISTINCT FROM OLD.confirmed_at)
       OR (OLD.disputed_at IS NOT NULL AND NEW.disputed_at IS DISTINCT FROM OLD.disputed_at)
       OR (OLD.served_minutes IS NOT NULL AND OLD.resolved_at IS NULL AND NEW.resolved_at IS NULL
            AND NEW.served_minutes IS DISTINCT FROM OLD.served_minutes)
    THEN
        RAISE EXCEPTION 'a time-bank exchange''s completed steps never change' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER timebank_exchange_guard BEFORE UPDATE ON timebank_exchange
    FOR EACH ROW EXECUTE FUNCTION vledger_timebank_exchange_guard();

CREATE TABLE timebank_exchange_event (
    community_id bigint NOT NULL,
    event_id uuid NOT NULL,
    exchange_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN {EVENT_KINDS}),
    from_state text CHECK (from_state IN {STATES}),
    to_state text NOT NULL CHECK (to_state IN {STATES}),
    actor_id uuid NOT NULL,
    party text NOT NULL CHECK (party IN ('recipient', 'provider', 'staff')),
    at timestamptz NOT NULL,
    note text,
    detail jsonb NOT NULL DEFAULT '{{}}',
    PRIMARY KEY (community_id, event_id),
    FOREIGN KEY (community_id, exchange_id) REFERENCES timebank_exchange (community_id, exchange_id),
    CHECK ((from_state IS NULL) = (kind = 'requested'))
);
CREATE INDEX timebank_exchange_event_by_exchange ON timebank_exchange_event (community_id, exchange_id, at);

-- kind is what relative_person_id is to person_id; the pair is stored in id order (the service
-- turns the kind round when it swaps them), so one partial unique index covers both directions.
CREATE TABLE person_relation (
    community_id bigint NOT NULL,
    relation_id uuid NOT NULL,
    person_id uuid NOT NULL,
    relative_person_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN {RELATION_KINDS}),
    recorded_by uuid NOT NULL,
    recorded_at timestamptz NOT NULL,
    ended_by uuid,
    ended_at timestamptz,
    PRIMARY KEY (community_id, relation_id),
    FOREIGN KEY (community_id, person_id) REFERENCES person (community_id, person_id),
    FOREIGN KEY (community_id, relative_person_id) REFERENCES person (community_id, person_id),
    CHECK (person_id < relative_person_id),
    CHECK ((ended_at IS NULL) = (ended_by IS NULL)),
    CHECK (ended_at IS NULL OR ended_at >= recorded_at)
);
CREATE UNIQUE INDEX person_relation_current_uq ON person_relation (community_id, person_id, relative_person_id)
    WHERE ended_at IS NULL;
CREATE INDEX person_relation_by_relative ON person_relation (community_id, relative_person_id)
    WHERE ended_at IS NULL;

CREATE TABLE hardship_flag (
    community_id bigint NOT NULL,
    flag_id uuid NOT NULL,
    person_id uuid NOT NULL,
    valid_from date NOT NULL,
    valid_until date,
    granted_by uuid NOT NULL,
    granted_at timestamptz NOT NULL,
    revoked_by uuid,
    revoked_at timestamptz,
    PRIMARY KEY (community_id, flag_id),
    FOREIGN KEY (community_id, person_id) REFERENCES person (community_id, person_id),
    CHECK (valid_until IS NULL OR valid_until >= valid_from),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
CREATE INDEX hardship_flag_by_person ON hardship_flag (community_id, person_id);

-- Relations end once and hardship flags are revoked once; nothing else about them changes.
CREATE FUNCTION vledger_end_once_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_rest jsonb := to_jsonb(OLD) - TG_ARGV[0] - TG_ARGV[1];
    new_rest jsonb := to_jsonb(NEW) - TG_ARGV[0] - TG_ARGV[1];
BEGIN
    IF old_rest IS DISTINCT FROM new_rest OR (to_jsonb(OLD) ->> TG_ARGV[1]) IS NOT NULL THEN
        RAISE EXCEPTION '% rows change only to be ended, once', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER person_relation_end_once BEFORE UPDATE ON person_relation
    FOR EACH ROW EXECUTE FUNCTION vledger_end_once_guard('ended_by', 'ended_at');
CREATE TRIGGER hardship_flag_revoke_once BEFORE UPDATE ON hardship_flag
    FOR EACH ROW EXECUTE FUNCTION vledger_end_once_guard('revoked_by', 'revoked_at');

CREATE TABLE region_cross_community_event (
    region_id bigint NOT NULL REFERENCES region (region_id),
    event_id uuid NOT NULL,
    enabled boolean NOT NULL,
    actor_id uuid NOT NULL,
    at timestamptz NOT NULL,
    note text NOT NULL DEFAULT '',
    PRIMARY KEY (region_id, event_id)
);
"""

APPEND_ONLY = ("timebank_exchange_event", "region_cross_community_event")
NO_DELETE = ("timebank_exchange", "person_relation", "hardship_flag")

EXCHANGE_UPDATABLE = (
    "state, provider_community_id, provider_person_id, served_minutes, charged_coin_minutes,"
    " credited_coin_minutes, pool_coin_minutes, release_transfer_id, payment_transfer_id, credit_transfer_id,"
    " resolution, matched_at, started_at, confirmed_at, disputed_at, resolved_at, settled_at, cancelled_at"
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
    op.execute(f"GRANT SELECT, INSERT ON {', '.join(APPEND_ONLY + NO_DELETE)} TO vledger_app")
    op.execute(f"GRANT UPDATE ({EXCHANGE_UPDATABLE}) ON timebank_exchange TO vledger_app")
    op.execute("GRANT UPDATE (ended_by, ended_at) ON person_relation TO vledger_app")
    op.execute("GRANT UPDATE (revoked_by, revoked_at) ON hardship_flag TO vledger_app")
    op.execute("GRANT UPDATE (cross_community) ON region TO vledger_app")


def downgrade() -> None:
    op.execute("REVOKE UPDATE (cross_community) ON region FROM vledger_app")
    op.execute(
        "DROP TABLE IF EXISTS region_cross_community_event, hardship_flag, person_relation,"
        " timebank_exchange_event, timebank_exchange"
    )
    op.execute("DROP FUNCTION IF EXISTS vledger_timebank_exchange_guard()")
    op.execute("DROP FUNCTION IF EXISTS vledger_end_once_guard()")
