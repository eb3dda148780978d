"""Fan-out: consumer groups on the event log turn events into inbox changes."""
