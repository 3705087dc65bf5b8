"""Points supermarket (积分超市): catalog items, stock movements, orders and their events.

``shop_item`` is a catalog item with its terms (price in points, reference value in fen, funding
source, pickup point, limits, active window, score gate) and two stock counters: units free to
order and units reserved by open orders. Items are never deleted (switch them off instead).
``shop_stock_movement`` is the append-only history of every stock change with its actor (restock,
write-off, reservation, release, fulfilment): the counters always equal what it adds up to.
``shop_order`` is one redemption: the terms copied from the item when it was placed, the points
account that pays, the pending (hold) transfer, and, once closed, the transfer that posted or
voided the hold (and the expiry transfer of released points whose lots had expired). Only the keyed
hash of the pickup code is stored. A trigger keeps an order's terms fixed and lets its state move
only from ``placed`` to one end state. ``shop_order_event`` is each step with its actor
(NULL: the scheduled expiry job).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FUNDING = "('public_budget', 'village_collective', 'donor')"
SCOPES = "('person', 'household')"
PERIODS = "('month', 'quarter', 'year')"
STATES = "('placed', 'fulfilled', 'cancelled', 'unclaimed_expired')"
MOVEMENTS = "('restock', 'write_off', 'reservation', 'release', 'fulfilment')"

SCHEMA = f"""
CREATE TABLE shop_item (
    community_id bigint NOT NULL REFERENCES community (community_id),
    item_id uuid NOT NULL,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description text NOT NULL CHECK (length(description) <= 1000),
    price_points bigint NOT NULL CHECK (price_points > 0),
    reference_value_fen bigint NOT NULL CHECK (reference_value_fen >= 0),
    funding_source text NOT NULL CHECK (funding_source IN {FUNDING}),
    pickup_point text NOT NULL CHECK (length(pickup_point) BETWEEN 1 AND 200),
    limit_scope text NOT NULL CHECK (limit_scope IN {SCOPES}),
    limit_quantity integer CHECK (limit_quantity > 0),
    limit_period text NOT NULL CHECK (limit_period IN {PERIODS}),
    once_per_period boolean NOT NULL,
    min_household_score_points bigint,
    active_from timestamptz,
    active_until timestamptz,
    active boolean NOT NULL,
    stock_available bigint NOT NULL CHECK (stock_available >= 0),
    stock_reserved bigint NOT NULL CHECK (stock_reserved >= 0),
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (community_id, item_id),
    CHECK (active_from IS NULL OR active_until IS NULL OR active_from < active_until)
);

CREATE TABLE shop_order (
    community_id bigint NOT NULL,
    order_id uuid NOT NULL,
    item_id uuid NOT NULL,
    placed_by_person_id uuid NOT NULL,
    buyer_scope text NOT NULL CHECK (buyer_scope IN {SCOPES}),
    household_id uuid,
    account_id uuid NOT NULL,
    quantity integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    price_points bigint NOT NULL CHECK (price_points > 0),
    total_points bigint NOT NULL CHECK (total_points = price_points * quantity),
    reference_value_fen bigint NOT NULL CHECK (reference_value_fen >= 0),
    funding_source text NOT NULL CHECK (funding_source IN {FUNDING}),
    state text NOT NULL CHECK (state IN {STATES}),
    pickup_code_hash bytea NOT NULL CHECK (length(pickup_code_hash) = 32),
    hold_transfer_id uuid NOT NULL,
    resolve_transfer_id uuid,
    expiry_transfer_id uuid,
    expired_points bigint CHECK (expired_points > 0),
    idempotency_key text NOT NULL,
    request_hash bytea NOT NULL,
    placed_at timestamptz NOT NULL,
    pickup_deadline timestamptz NOT NULL,
    closed_at timestamptz,
    closed_by uuid,
    PRIMARY KEY (community_id, order_id),
    FOREIGN KEY (community_id, item_id) REFERENCES shop_item (community_id, item_id),
    FOREIGN KEY (community_id, placed_by_person_id) REFERENCES person (community_id, person_id),
    FOREIGN KEY (community_id, household_id) REFERENCES household (community_id, household_id),
    FOREIGN KEY (community_id, account_id) REFERENCES account (community_id, account_id),
    CHECK ((buyer_scope = 'household') = (household_id IS NOT NULL)),
    CHECK ((state = 'placed') = (closed_at IS NULL)),
    CHECK ((state = 'placed') = (resolve_transfer_id IS NULL)),
    CHECK ((expiry_transfer_id IS NULL) = (expired_points IS NULL)),
    CHECK (expiry_transfer_id IS NULL OR state IN ('cancelled', 'unclaimed_expired')),
    CHECK (pickup_deadline > placed_at)
);
CREATE UNIQUE INDEX shop_order_pickup_code_uq ON shop_order (community_id, pickup_code_hash);
CREATE UNIQUE INDEX shop_order_key_uq ON shop_order (community_id, placed_by_person_id, idempotency_key);
CREATE INDEX shop_order_by_item ON shop_order (community_id, item_id, placed_at);
CREATE INDEX shop_order_by_account ON shop_order (community_id, account_id, placed_at);
CREATE INDEX shop_order_by_person ON shop_order (community_id, placed_by_person_id, placed_at);
CREATE INDEX shop_order_open ON shop_order (community_id, pickup_deadline) WHERE state = 'placed';

CREATE FUNCTION vledger_shop_order_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.community_id, NEW.order_id, NEW.item_id, NEW.placed_by_person_id, NEW.buyer_scope,
        NEW.household_id, NEW.account_id, NEW.quantity, NEW.price_points, NEW.total_points,
        NEW.reference_value_fen, NEW.funding_source, NEW.pickup_code_hash, NEW.hold_transfer_id,
        NEW.idempotency_key, NEW.request_hash, NEW.placed_at, NEW.pickup_deadline)
       IS DISTINCT FROM
       (OLD.community_id, OLD.order_id, OLD.item_id, OLD.placed_by_person_id, OLD.buyer_scope,
        OLD.household_id, OLD.account_id, OLD.quantity, OLD.price_points, OLD.total_points,
        OLD.reference_value_fen, OLD.funding_source, OLD.pickup_code_hash, OLD.hold_transfer_id,
        OLD.idempotency_key, OLD.request_hash, OLD.placed_at, OLD.pickup_deadline)
    THEN
        RAISE EXCEPTION 'an order''s terms never change' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF OLD.state <> 'placed' OR NEW.state = 'placed' THEN
        RAISE EXCEPTION 'an order in state % cannot become %', OLD.state, NEW.state
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER shop_order_guard BEFORE UPDATE ON shop_order
    FOR EACH ROW EXECUTE FUNCTION vledger_shop_order_guard();

CREATE TABLE shop_stock_movement (
    community_id bigint NOT NULL,
    movement_id uuid NOT NULL,
    item_id uuid NOT NULL,
    kind text NOT NULL CHECK (kind IN {MOVEMENTS}),
    quantity bigint NOT NULL CHECK (quantity > 0),
    order_id uuid,
    actor_id uuid,
    at timestamptz NOT NULL,
    note text NOT NULL CHECK (length(note) <= 500),
    PRIMARY KEY (community_id, movement_id),
    FOREIGN KEY (community_id, item_id) REFERENCES shop_item (community_id, item_id),
    FOREIGN KEY (community_id, order_id) REFERENCES shop_order (community_id, order_id),
    CHECK ((order_id IS NULL) = (kind IN ('restock', 'write_off'))),
    CHECK (actor_id IS NOT NULL OR kind = 'release')
);
CREATE INDEX shop_stock_movement_by_item ON shop_stock_movement (community_id, item_id, at);

CREATE TABLE shop_order_event (
    community_id bigint NOT NULL,
    event_id uuid NOT NULL,
    order_id uuid NOT NULL,
    from_state text CHECK (from_state IN {STATES}),
    to_state text NOT NULL CHECK (to_state IN {STATES}),
    actor_id uuid,
    at timestamptz NOT NULL,
    detail jsonb NOT NULL,
    PRIMARY KEY (community_id, event_id),
    FOREIGN KEY (community_id, order_id) REFERENCES shop_order (community_id, order_id)
);
CREATE INDEX shop_order_event_by_order ON shop_order_event (community_id, order_id, at);
"""

APPEND_ONLY = ("shop_stock_movement", "shop_order_event")
NO_DELETE = ("shop_item", "shop_order")

ITEM_UPDATABLE = (
    "name, description, price_points, reference_value_fen, funding_source, pickup_point, limit_scope,"
    " limit_quantity, limit_period, once_per_period, min_household_score_points, active_from, active_until,"
    " active, stock_available, stock_reserved, updated_at"
)
ORDER_UPDATABLE = "state, resolve_transfer_id, expiry_transfer_id, expired_points, closed_at, closed_by"


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
    op.execute(f"GRANT SELECT, INSERT ON {', '.join(NO_DELETE + APPEND_ONLY)} TO vledger_app")
    op.execute(f"GRANT UPDATE ({ITEM_UPDATABLE}) ON shop_item TO vledger_app")
    op.execute(f"GRANT UPDATE ({ORDER_UPDATABLE}) ON shop_order TO vledger_app")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS shop_order_event, shop_stock_movement, shop_order, shop_item")
    op.execute("DROP FUNCTION IF EXISTS vledger_shop_order_guard()")
