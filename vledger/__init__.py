"""vledger."""
