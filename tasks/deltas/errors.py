"""The ways a delta can fail for good (a missing delta is :class:`tasks.errors.DeltaNotReady`).

Both are permanent for :func:`tasks.errors.is_transient`: no retry repairs a
delta, so its batch is dead-lettered with the message.
"""

from __future__ import annotations


class InvalidDelta(ValueError):
    """The run's delta can never be merged as it is (permanent: dead-letter it)."""


class UnsafeDelta(InvalidDelta):
    """A tarball member or object key would be written outside the delta's directory."""


class DeltaIncomplete(RuntimeError):
    """After the upserts, some of the delta's ids are not in the target collection."""
