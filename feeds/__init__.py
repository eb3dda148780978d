"""Materialized views: inboxes, change logs and the follow graph. Only this package touches their keys."""
