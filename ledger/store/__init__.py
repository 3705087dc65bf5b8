"""ledger/store."""
