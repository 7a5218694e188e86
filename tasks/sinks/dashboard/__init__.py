"""The receipts dashboard sink (``CHROMASYNC_SINKS=chroma,dashboard``): see :mod:`.sink`.

Modules: :mod:`.settings` (its environment variables), :mod:`.projection`
(what a receipt's state becomes, pure), :mod:`.store` (conditional writes),
:mod:`.verify` (drift and repairs), :mod:`.table` (provisioning, probes).
"""

from __future__ import annotations

from tasks.sinks.dashboard.projection import ProjectionError
from tasks.sinks.dashboard.sink import DashboardSink

SINK = DashboardSink

__all__ = ["SINK", "DashboardSink", "ProjectionError"]
