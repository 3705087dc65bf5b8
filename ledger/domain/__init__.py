"""The pure ledger domain: units, accounts, transfers, balances, lots and error codes (stdlib only)."""
