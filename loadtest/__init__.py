"""Load generator for the notifier: a seeded workload against a local or given stack, a ledger of
every event, WebSocket observers, and a checker and report (`python -m loadtest SCENARIO`)."""
