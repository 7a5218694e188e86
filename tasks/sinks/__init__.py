"""The sinks: one module per sink (``tasks/sinks/<name>.py``), one interface (:mod:`.backend`).

A sink module defines ``SINK``, its :class:`~tasks.sinks.backend.Sink` class,
built from the worker's settings. Which sinks run, and which changes each
takes, is :mod:`chromasync.core.sinks`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.config import WorkerSettings
    from tasks.sinks.backend import Sink


def sink_class(name: str) -> type[Sink]:
    """The class of the sink ``name`` (an entry of ``CHROMASYNC_SINKS``).

    Imported on demand: a worker that only feeds the dashboard never imports chromadb.
    """
    module = importlib.import_module(f"tasks.sinks.{name}")
    cls: type[Sink] = module.SINK
    return cls


def build_sink(name: str, settings: WorkerSettings) -> Sink:
    """The sink ``name``, built from ``settings`` (connects its clients)."""
    return sink_class(name).from_settings(settings)
