"""What every process role shares: settings, the Redis factory, lifecycle and tokens."""
