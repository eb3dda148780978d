"""Real-time push: WebSocket sessions fed by one Redis pub/sub connection per process."""
