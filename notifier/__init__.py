"""Ingest, fan-out and the process roles of the notification backend."""
