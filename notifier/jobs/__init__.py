"""Background jobs: the arq worker of the `notifier jobs` role."""
