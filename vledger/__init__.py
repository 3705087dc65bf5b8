"""The composition root: the ``vledger`` command wires ledger, api and jobs together."""
