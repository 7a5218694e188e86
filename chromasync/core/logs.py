"""Structured logs for the command line and the worker: text for people, JSON for machines.

``CHROMASYNC_LOG_FORMAT`` picks the form: ``text`` (default) keeps the usual
one-line layout and appends the context as ``[key=value ...]``; ``json`` writes
one JSON object per line, for a log pipeline that indexes fields.

The context is what a log line is *about*, carried without threading it
through every call:

* the Celery task id and name, read from Celery's current task (the same
  source Celery's own ``TaskFormatter`` uses), so every logger inside a task
  gets them, not only ``celery.task``;
* fields bound with :func:`set_log_context` (collection, batch id), kept in a
  :mod:`contextvars` variable: per thread, so the lease heartbeat thread and a
  task never see each other's context;
* ``extra=`` fields of one call (``event_id``, ``receipt`` of a dead letter):
  any attribute the standard ``LogRecord`` does not have is shown.

The CLI calls :func:`setup_logging` (``chromasync.cli``); the worker calls
:func:`install_worker_logging` once at import of ``tasks.app``, which hooks
Celery's ``after_setup_logger``/``after_setup_task_logger`` signals, so the
handlers Celery creates get these formatters, and ``task_postrun`` so no
context outlives its task. Importing this module does not import Celery.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from chromasync.core.config import ConfigError

#: Environment variable choosing the log format.
LOG_FORMAT_ENV = "CHROMASYNC_LOG_FORMAT"
#: The formats :data:`LOG_FORMAT_ENV` accepts; the first is the default.
LOG_FORMATS = ("text", "json")
#: Layout of a text line in the CLI (the context is appended after it).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Loggers that say too much at INFO for an operator.
NOISY_LOGGERS = ("botocore", "urllib3", "chromadb", "kombu", "celery", "boto3")
#: Context fields, in the order the text format shows them.
CONTEXT_ORDER = ("task_id", "collection", "batch_id", "event_id", "receipt", "shard")

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))
) | {"message", "asctime", "color", "task_name", "task_id"}

_context: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "chromasync_log_context", default=None
)


def log_format(env: Mapping[str, str] | None = None) -> str:
    """The configured format; a value that is present but unknown is a :class:`ConfigError`."""
    env = os.environ if env is None else env
    raw = (env.get(LOG_FORMAT_ENV) or "").strip().lower()
    if not raw:
        return LOG_FORMATS[0]
    if raw not in LOG_FORMATS:
        raise ConfigError(f"{LOG_FORMAT_ENV}={raw!r} must be one of {', '.join(LOG_FORMATS)}")
    return raw


# -- context -------------------------------------------------------------------------------


def set_log_context(**fields: Any) -> None:
    """Replace this thread's context (a task calls it first, so nothing of the last task stays)."""
    _context.set({k: v for k, v in fields.items() if v is not None})


def clear_log_context() -> None:
    _context.set(None)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to the context for the duration of a block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def change_fields(payload: Any) -> dict[str, Any]:
    """``extra=`` fields naming what a payload is about: event id and receipt of its changes.

    One change gives ``event_id`` and ``receipt`` (``image_id/receipt_id``);
    several give ``event_ids`` (the first 20). Unreadable payloads give nothing.
    """
    changes = payload.get("changes") if isinstance(payload, dict) else None
    if not isinstance(changes, list):
        return {}
    dicts = [c for c in changes if isinstance(c, dict)]
    if len(changes) == 1 and dicts:
        change = dicts[0]
        raw_keys = change.get("keys")
        keys: dict[str, Any] = raw_keys if isinstance(raw_keys, dict) else {}
        fields: dict[str, Any] = {"event_id": change.get("event_id")}
        if keys.get("image_id") is not None and keys.get("receipt_id") is not None:
            fields["receipt"] = f"{keys['image_id']}/{keys['receipt_id']}"
        return {k: v for k, v in fields.items() if v is not None}
    return {"event_ids": [c.get("event_id") for c in dicts[:20]]}


def _current_task() -> tuple[str, str] | None:
    """(id, name) of the Celery task running in this thread, if Celery is loaded at all."""
    state = sys.modules.get("celery._state")
    if state is None:
        return None
    task = state.get_current_task()
    if task is None or task.request is None or task.request.id is None:
        return None
    return str(task.request.id), str(task.name)


def record_context(record: logging.LogRecord, task: tuple[str, str] | None) -> dict[str, Any]:
    """Everything a record is about: task, bound context, then its own ``extra=`` fields.

    ``task`` is the running task's (id, name) (:func:`_current_task`), or None.
    """
    fields: dict[str, Any] = {}
    if task is not None:
        fields["task_id"], fields["task_name"] = task
    fields.update(_context.get() or {})
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
            fields[key] = value
    return fields


# -- formatters ----------------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """The usual line, then `` [task_id=.. collection=.. ...]`` when there is context."""

    def format(self, record: logging.LogRecord) -> str:
        # Celery's task format names %(task_name)s and %(task_id)s, as its TaskFormatter did.
        current = _current_task()
        task = current or ("???", "???")
        record.__dict__.setdefault("task_id", task[0])
        record.__dict__.setdefault("task_name", task[1])
        line = super().format(record)
        fields = record_context(record, current)
        fields.pop("task_name", None)
        fields.pop("data", None)  # Celery's own extra: already in its message
        if not fields:
            return line
        ordered = [k for k in CONTEXT_ORDER if k in fields] + sorted(
            k for k in fields if k not in CONTEXT_ORDER
        )
        context = " ".join(f"{k}={_short(fields[k])}" for k in ordered)
        first, newline, rest = line.partition("\n")  # keep tracebacks below the context
        return f"{first} [{context}]{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        out.update(record_context(record, _current_task()))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def make_formatter(fmt: str, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter(text_format)


# -- setup ---------------------------------------------------------------------------------


def setup_logging(verbose: bool = False, env: Mapping[str, str] | None = None) -> None:
    """The CLI's logging: one stderr handler on the root logger, in the configured format."""
    formatter = make_formatter(log_format(env))
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root.handlers = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _reformat(logger: logging.Logger | None, fmt: str, keep: str | None) -> None:
    """Give every handler of ``logger`` our formatter (text keeps Celery's layout)."""
    if logger is None:
        return
    for handler in logger.handlers:
        handler.setFormatter(make_formatter(fmt, keep or TEXT_FORMAT))


def install_worker_logging() -> None:
    """Hook the worker's logging to Celery's signals (idempotent; call at import of tasks.app).

    Reads ``CHROMASYNC_LOG_FORMAT`` now, so a wrong value stops the worker at
    start with a :class:`ConfigError` that names the variable.
    """
    from celery import signals

    fmt = log_format()

    def reformat(logger: logging.Logger | None = None, **kw: Any) -> None:
        _reformat(logger, fmt, kw.get("format"))

    def task_postrun(**_: Any) -> None:
        clear_log_context()

    # Strong references (weak=False): these closures live nowhere else.
    signals.after_setup_logger.connect(reformat, weak=False, dispatch_uid="chromasync.logs.logger")
    signals.after_setup_task_logger.connect(
        reformat, weak=False, dispatch_uid="chromasync.logs.task_logger"
    )
    signals.task_postrun.connect(task_postrun, weak=False, dispatch_uid="chromasync.logs.postrun")
