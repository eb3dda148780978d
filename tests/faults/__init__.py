"""Fault-injection proofs (issue 3): the product's roles and redis-server as real processes,
faults injected from outside, a ledger of what ingest acknowledged and a checker of what arrived."""
