"""Opening a Chroma ``PersistentClient`` directory, the one way every part does it.

The embedded target, delta merges, snapshot checks and the seed's delta builder
all open directories; each translates a failure into its own error, so this
raises whatever chromadb raises. Telemetry stays off: these processes must not
reach beyond the machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The file at the root of every Chroma ``PersistentClient`` directory.
CHROMA_DB_FILE = "chroma.sqlite3"


def open_directory(path: Path | str) -> Any:
    """A ``chromadb.PersistentClient`` on ``path`` (imports chromadb, which starts threads)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    return chromadb.PersistentClient(
        path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
    )
