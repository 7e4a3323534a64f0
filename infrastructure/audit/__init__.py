"""The audit side: history, deliveries, the global log, and the ledger's checks."""
