"""The dashboard sink's own settings, read from the worker's ``CHROMASYNC_*`` variables.

They live here, not in :class:`tasks.config.WorkerSettings`: a sink reads what
it needs from ``settings.sink_env``, so adding a sink adds nothing to the
worker's settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from chromasync.core.config import ConfigError, env_int, env_str

if TYPE_CHECKING:
    from tasks.config import WorkerSettings

#: The dashboard table's name; default ``{CHROMASYNC_TABLE}-dashboard``.
TABLE_ENV: Final = "CHROMASYNC_DASHBOARD_TABLE"
#: Days a projection item lives after its receipt's day (DynamoDB TTL on ``expires_at``);
#: 0 keeps items for ever.
TTL_DAYS_ENV: Final = "CHROMASYNC_DASHBOARD_TTL_DAYS"
#: Appended to the source table's name when ``CHROMASYNC_DASHBOARD_TABLE`` is unset.
DEFAULT_TABLE_SUFFIX: Final = "-dashboard"
#: DynamoDB's rule for table names, checked at start rather than at the first write.
_TABLE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{3,255}")


@dataclass(frozen=True)
class DashboardSettings:
    """Where the dashboard is written and how long its items live."""

    #: The source table the projection is read from.
    source_table: str
    #: The dashboard table the projection is written to.
    table: str
    #: Whole days after a receipt's day its items expire (0: never).
    ttl_days: int = 0

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> DashboardSettings:
        """Read from ``settings.sink_env``; a wrong value raises ``ConfigError`` naming it."""
        env = settings.sink_env
        source = settings.shared.table
        table = env_str(env, TABLE_ENV, f"{source}{DEFAULT_TABLE_SUFFIX}")
        if not _TABLE_NAME.fullmatch(table):
            raise ConfigError(
                f"{TABLE_ENV}={table!r} is not a valid DynamoDB table name "
                "(3-255 letters, digits, '_', '-' and '.')"
            )
        if table == source:
            raise ConfigError(
                f"{TABLE_ENV}={table!r} names the source table (CHROMASYNC_TABLE): the "
                "dashboard needs a table of its own"
            )
        return cls(source, table, env_int(env, TTL_DAYS_ENV, 0, minimum=0))
