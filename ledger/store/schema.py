"""Every table model in one metadata (what migrations must produce; a test compares the two)."""

from __future__ import annotations

from ledger.store import (
    certificate_tables,  # noqa: F401 - registers its tables in the metadata
    people_tables,
    service_record_tables,  # noqa: F401 - registers its tables in the metadata
    shop_tables,  # noqa: F401 - registers its tables in the metadata
    tables,
    timebank_tables,
)

__all__ = ["REFERENCE_TABLES", "metadata"]

metadata = tables.metadata
# Replicated, not distributed by community: regions (and the history of their switches),
# communities, and identities that span them.
REFERENCE_TABLES = tables.REFERENCE_TABLES | people_tables.IDENTITY_TABLES | timebank_tables.REGION_TABLES
