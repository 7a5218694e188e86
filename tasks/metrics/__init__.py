"""Metrics of the worker, the stream poller and ``chromasync run``, kept in Redis for the exporter.

:mod:`tasks.metrics.catalogue` names every metric, :mod:`tasks.metrics.writes`
gathers increments in process, :mod:`tasks.metrics.store` keeps them in Redis
and reads them back as a :mod:`tasks.metrics.snapshot`, and
:mod:`tasks.metrics.recording` holds the hooks the worker and ``chromasync
run`` call. docs/metrics.md describes every metric.
"""
