"""ledger/services."""
