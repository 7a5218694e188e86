"""Worker side of chromasync: ``celery -A tasks worker -Q words -c 1`` finds ``tasks.app``."""

from tasks.app import app

__all__ = ["app"]
