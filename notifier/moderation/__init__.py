"""Moderation: rules screen comments and mentions in the fan-out; people review what they flag."""
