"""Chroma targets: the embedded directory's exclusive writer lock, and target selection."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chromasync.core.config import ConfigError
from tasks.chroma.target import chroma_target_from_settings
from tasks.chroma.targets.embedded import DirectoryBusy, EmbeddedChromaTarget
from tasks.chroma.targets.server import ServerChromaTarget
from tasks.config import WorkerSettings


def test_a_second_process_cannot_write_a_directory_being_written(tmp_path: Path) -> None:
    target = EmbeddedChromaTarget(tmp_path)
    script = textwrap.dedent(f"""
        from tasks.chroma.targets.embedded import DirectoryBusy, EmbeddedChromaTarget
        other = EmbeddedChromaTarget({str(tmp_path)!r}, file_lock_timeout=0.3)
        try:
            with other.writing("words"):
                print("wrote")
        except DirectoryBusy as exc:
            print("busy:", exc)
    """)
    with target.writing("words"):
        held = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
    free = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert held.startswith("busy:") and "another process is writing" in held
    assert free.strip() == "wrote"


def test_the_lock_is_per_collection_directory(tmp_path: Path) -> None:
    first = EmbeddedChromaTarget(tmp_path)
    second = EmbeddedChromaTarget(tmp_path, file_lock_timeout=0.2)
    with first.writing("words"):
        with second.writing("lines"):
            pass  # another collection's directory is free
        with pytest.raises(DirectoryBusy), second.writing("words"):
            pass


def test_settings_pick_the_target(tmp_path: Path) -> None:
    embedded = chroma_target_from_settings(
        WorkerSettings.from_env({"CHROMASYNC_CHROMA_DIR": str(tmp_path)})
    )
    assert isinstance(embedded, EmbeddedChromaTarget) and embedded.root == tmp_path
    server = chroma_target_from_settings(
        WorkerSettings.from_env({"CHROMASYNC_CHROMA_URL": "http://127.0.0.1:8123"})
    )
    assert isinstance(server, ServerChromaTarget) and server.port == 8123
    with pytest.raises(ConfigError, match="CHROMASYNC_CHROMA_URL"):
        WorkerSettings.from_env({"CHROMASYNC_CHROMA_URL": "chroma:8000"})


def test_an_unreachable_chroma_server_says_so() -> None:
    from chromasync.local import free_port
    from tasks.chroma.target import ChromaUnavailable
    from tasks.errors import is_transient

    target = ServerChromaTarget(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ChromaUnavailable, match="unreachable") as info:
        target.collection("words")
    assert "CHROMASYNC_CHROMA_URL" in str(info.value)
    assert is_transient(info.value)


def test_a_chroma_server_that_is_overloaded_is_retried_one_that_refuses_is_not() -> None:
    import chromadb.errors
    import httpx

    from tasks.errors import is_transient

    assert is_transient(chromadb.errors.InternalError("boom"))  # 500
    assert is_transient(chromadb.errors.RateLimitError("slow down"))  # 429
    assert not is_transient(chromadb.errors.InvalidArgumentError("bad metadata"))  # 400
    assert not is_transient(chromadb.errors.NotFoundError("no such collection"))  # 404
    request = httpx.Request("POST", "http://127.0.0.1:8000/api/v2/update")
    for status, transient in ((503, True), (502, True), (400, False), (422, False)):
        response = httpx.Response(status, request=request)
        error = httpx.HTTPStatusError(str(status), request=request, response=response)
        assert is_transient(error) is transient, status
