"""ledger/audit."""
