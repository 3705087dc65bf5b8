"""People and households, users, tokens and roles, and versioned community settings.

Personal fields live only inside ``person.profile_enc`` (AES-GCM under the person's own data key,
which is wrapped by a master key in ``person_key``). Deleting the ``person_key`` row shreds the
person: the ciphertext stays but can never be read again, and ledger rows, which name people only
by pseudonymous ids, still verify. ``*_bidx`` columns are keyed blind indexes (HMAC) for lookup
and de-duplication without decrypting.

Users, tokens and role grants span communities (a region admin, an auditor), so they are reference
tables like region and community; everything else leads its keys with community_id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ROLES = (
    "('volunteer', 'social_worker', 'activity_leader', 'grid_worker', 'review_panel', 'shop_clerk',"
    " 'community_admin', 'region_admin', 'auditor')"
)

SCHEMA = f"""
CREATE TABLE app_user (
    user_id uuid PRIMARY KEY,
    username text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9][a-z0-9._-]{{2,63}}$'),
    password_hash text,
    -- The person this user is, for volunteers (pseudonymous ids only).
    person_community_id bigint,
    person_id uuid,
    disabled boolean NOT NULL DEFAULT false,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((person_community_id IS NULL) = (person_id IS NULL))
);
CREATE UNIQUE INDEX app_user_person_uq ON app_user (person_community_id, person_id) WHERE person_id IS NOT NULL;

-- Bearer tokens: login sessions and integration (API) tokens. Only SHA-256 of the secret is stored.
CREATE TABLE auth_token (
    token_id uuid PRIMARY KEY,
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    user_id uuid NOT NULL REFERENCES app_user (user_id),
    kind text NOT NULL CHECK (kind IN ('session', 'api')),
    name text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX auth_token_by_user ON auth_token (user_id);

CREATE TABLE role_grant (
    grant_id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES app_user (user_id),
    role text NOT NULL CHECK (role IN {ROLES}),
    community_id bigint REFERENCES community (community_id),
    region_id bigint REFERENCES region (region_id),
    granted_by uuid,
    granted_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    revoked_by uuid,
    CHECK ((community_id IS NULL) <> (region_id IS NULL))
);
CREATE UNIQUE INDEX role_grant_active_uq
    ON role_grant (user_id, role, coalesce(community_id, 0), coalesce(region_id, 0)) WHERE revoked_at IS NULL;

CREATE TABLE person (
    community_id bigint NOT NULL REFERENCES community (community_id),
    person_id uuid NOT NULL,
    profile_enc bytea,
    id_number_bidx bytea,
    phone_bidx bytea,
    consent_entry boolean NOT NULL DEFAULT false,
    consent_publish boolean NOT NULL DEFAULT false,
    minor boolean NOT NULL DEFAULT false,
    guardian_person_id uuid,
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    erased_at timestamptz,
    PRIMARY KEY (community_id, person_id),
    FOREIGN KEY (community_id, guardian_person_id) REFERENCES person (community_id, person_id),
    CHECK (NOT minor OR guardian_person_id IS NOT NULL OR erased_at IS NOT NULL),
    CHECK (erased_at IS NULL OR (profile_enc IS NULL AND id_number_bidx IS NULL AND phone_bidx IS NULL))
);
CREATE UNIQUE INDEX person_id_number_uq ON person (community_id, id_number_bidx) WHERE id_number_bidx IS NOT NULL;
CREATE INDEX person_phone ON person (community_id, phone_bidx) WHERE phone_bidx IS NOT NULL;

-- The person's data key, wrapped (AES-GCM) by master key ``key_id``. Deleted on erasure.
CREATE TABLE person_key (
    community_id bigint NOT NULL,
    person_id uuid NOT NULL,
    key_id text NOT NULL,
    wrapped_key bytea NOT NULL,
    PRIMARY KEY (community_id, person_id),
    FOREIGN KEY (community_id, person_id) REFERENCES person (community_id, person_id)
);

CREATE TABLE household (
    community_id bigint NOT NULL REFERENCES community (community_id),
    household_id uuid NOT NULL,
    code text NOT NULL,
    village_group text NOT NULL DEFAULT '',
    grid text NOT NULL DEFAULT '',
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    dissolved_at timestamptz,
    PRIMARY KEY (community_id, household_id),
    UNIQUE (community_id, code)
);

-- Membership over time: [valid_from, valid_to). Rows are closed, never deleted.
CREATE TABLE household_member (
    community_id bigint NOT NULL,
    member_id uuid NOT NULL,
    household_id uuid NOT NULL,
    person_id uuid NOT NULL,
    is_head boolean NOT NULL DEFAULT false,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz,
    PRIMARY KEY (community_id, member_id),
    FOREIGN KEY (community_id, household_id) REFERENCES household (community_id, household_id),
    FOREIGN KEY (community_id, person_id) REFERENCES person (community_id, person_id),
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX household_member_current_uq ON household_member (community_id, person_id) WHERE valid_to IS NULL;
CREATE UNIQUE INDEX household_head_current_uq ON household_member (community_id, household_id) WHERE valid_to IS NULL AND is_head;
CREATE INDEX household_member_by_household ON household_member (community_id, household_id, valid_from);

-- What happened to households (created, member added or removed, head changed, split, merged).
CREATE TABLE household_event (
    community_id bigint NOT NULL,
    event_id uuid NOT NULL,
    household_id uuid NOT NULL,
    kind text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{{}}',
    actor_id uuid,
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, event_id),
    FOREIGN KEY (community_id, household_id) REFERENCES household (community_id, household_id)
);

-- Versioned rule parameters (domain.md): a version applies from its effective date on.
CREATE TABLE community_setting (
    community_id bigint NOT NULL REFERENCES community (community_id),
    version integer NOT NULL CHECK (version >= 1),
    effective_from date NOT NULL,
    params jsonb NOT NULL,
    note text NOT NULL DEFAULT '',
    created_by uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (community_id, version)
);
"""


def upgrade() -> None:
    op.execute(SCHEMA)
    for table in ("household_event", "community_setting"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION vledger_reject_change()"
        )
    op.execute("GRANT SELECT, INSERT ON app_user, auth_token, role_grant TO vledger_app")
    op.execute("GRANT UPDATE (password_hash, disabled) ON app_user TO vledger_app")
    op.execute("GRANT UPDATE (revoked_at) ON auth_token TO vledger_app")
    op.execute("GRANT UPDATE (revoked_at, revoked_by) ON role_grant TO vledger_app")
    op.execute("GRANT SELECT, INSERT, UPDATE ON person TO vledger_app")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON person_key TO vledger_app")
    op.execute("GRANT SELECT, INSERT ON household, household_member, household_event TO vledger_app")
    op.execute("GRANT UPDATE (dissolved_at, village_group, grid) ON household TO vledger_app")
    op.execute("GRANT UPDATE (valid_to, is_head) ON household_member TO vledger_app")
    op.execute("GRANT SELECT, INSERT ON community_setting TO vledger_app")


def downgrade() -> None:
    for table in (
        "community_setting",
        "household_event",
        "household_member",
        "household",
        "person_key",
        "person",
        "role_grant",
        "auth_token",
        "app_user",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
