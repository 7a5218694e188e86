"""What :func:`producers.enqueue` raises: one family, :class:`EnqueueError`, for every failure.

A service that enqueues changes needs to tell three things apart, and each
has its own class, all of them :class:`EnqueueError`:

- its input is wrong (:class:`InvalidChange`, :class:`ChangeTooLarge`): a bug
  on the caller's side; nothing was sent and no retry helps;
- the deployment is wrong (:class:`NotConfigured` for a ``CHROMASYNC_*``
  variable, :class:`NotDeployed` for a queue that does not exist or a call the
  role may not make): an operator must act; retrying later may help then;
- the broker did not take a batch after the publisher's retries
  (:class:`PublishFailed`): retry later; duplicates are harmless because the
  worker applies the table's current state.

``except producers.EnqueueError`` catches all of them. Each also keeps the
type it had before this family existed (``ValueError``, ``ConfigError``,
``DeploymentError``, ``PublishError``), so existing handlers still match.
Every one carries ``published``: the tasks already sent when it was raised
(empty when nothing was).

:class:`PublishError` and :class:`ChangeTooLarge` live here rather than next to
the code that raises them (``producers.publishing``, ``producers.packing``,
which re-export them) so that this module imports nothing heavier than the
settings.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from chromasync.core.config import ConfigError
from chromasync.core.resources import DeploymentError

if TYPE_CHECKING:
    from producers.publishing import Published


class PublishError(RuntimeError):
    """A batch could not be published after every retry (any producer: stream, replay, API)."""


class EnqueueError(Exception):
    """Base of everything :func:`producers.enqueue` raises; ``published`` lists what went out."""

    def __init__(self, message: str, published: Iterable[Published] = ()) -> None:
        super().__init__(message)
        #: Tasks sent before the error, one per batch; empty when nothing was sent.
        self.published: list[Published] = list(published)


class InvalidChange(EnqueueError, ValueError):
    """What was given cannot be sent: not changes at all, or a change that breaks the contract.

    Raised before anything is sent. Also for a ``collection=`` that is not one
    of ``CHROMASYNC_COLLECTIONS`` (no worker would ever read it).
    """


class ChangeTooLarge(InvalidChange):
    """One change alone does not fit in a task message, even without its image and values.

    The stream's pipeline quarantines the record instead; :func:`producers.enqueue`
    raises it before sending anything.
    """


class NotConfigured(EnqueueError, ConfigError):
    """A ``CHROMASYNC_*`` (or ``AWS_*``) variable is wrong; the message names it. Nothing sent."""


class _NotSent(EnqueueError):
    """Some batches did not go out; ``unsent_changes`` counts the changes they held."""

    def __init__(
        self, message: str, published: Iterable[Published], unsent_changes: int | None
    ) -> None:
        super().__init__(message, published)
        #: Changes not sent (a change bound for two collections counts twice); None when
        #: not known (:func:`producers.enqueue_records`: send its records again).
        self.unsent_changes = unsent_changes


class NotDeployed(_NotSent, DeploymentError):
    """A queue does not exist, or the credentials may not send to it: fix the deployment.

    The original :class:`~chromasync.core.resources.MissingResource` or
    :class:`~chromasync.core.resources.NotPermitted` is the ``__cause__``.
    """


class PublishFailed(_NotSent, PublishError):
    """The broker did not take a batch after the publisher's retries: send again later."""
