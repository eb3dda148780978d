"""The HTTP API: service-facing ingest and client-facing inbox REST."""
