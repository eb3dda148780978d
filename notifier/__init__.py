"""Ingest, fan-out and the process roles of the notification backend."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("notifier")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.1.0"
