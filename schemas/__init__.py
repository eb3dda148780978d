"""Contracts: events, WebSocket frames, errors and Redis keys. Imports nothing from the project."""
