"""Picking the Chroma target the settings name: a server URL, else an embedded directory.

Kept apart from :mod:`tasks.chroma.target` (the interface), which both
targets import: the interface never imports an implementation.
"""

from __future__ import annotations

from tasks.chroma.target import ChromaTarget
from tasks.chroma.targets.embedded import EmbeddedChromaTarget
from tasks.chroma.targets.server import ServerChromaTarget
from tasks.config import WorkerSettings


def chroma_target_from_settings(settings: WorkerSettings) -> ChromaTarget:
    """``CHROMASYNC_CHROMA_URL`` set: that server; otherwise ``CHROMASYNC_CHROMA_DIR``."""
    if settings.chroma_url:
        return ServerChromaTarget(settings.chroma_url)
    return EmbeddedChromaTarget(settings.chroma_dir)
