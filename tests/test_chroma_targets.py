"""Chroma targets: the embedded directory's exclusive writer lock, and target selection."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chromasync.core.config import ConfigError
from tasks.chroma.factory import chroma_target_from_settings
from tasks.chroma.target import ChromaTarget
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


@pytest.mark.parametrize(
    ("setting", "value", "kind", "described"),
    [
        ("CHROMASYNC_CHROMA_DIR", "{tmp}", EmbeddedChromaTarget, "embedded directory {tmp}"),
        (
            "CHROMASYNC_CHROMA_URL",
            "http://127.0.0.1:8123",
            ServerChromaTarget,
            "server http://127.0.0.1:8123",
        ),
    ],
)
def test_settings_pick_the_target(
    setting: str, value: str, kind: type[ChromaTarget], described: str, tmp_path: Path
) -> None:
    settings = WorkerSettings.from_env({setting: value.format(tmp=tmp_path)})
    target = chroma_target_from_settings(settings)
    assert isinstance(target, kind)
    assert target.describe() == described.format(tmp=tmp_path)


def test_a_chroma_url_without_scheme_is_refused() -> None:
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


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        ("InternalError", True),  # 500
        ("RateLimitError", True),  # 429
        ("InvalidArgumentError", False),  # 400
        ("NotFoundError", False),  # 404
    ],
)
def test_a_chroma_server_error_is_retried_only_when_overloaded(error: str, transient: bool) -> None:
    import chromadb.errors

    from tasks.errors import is_transient

    assert is_transient(getattr(chromadb.errors, error)(error)) is transient


@pytest.mark.parametrize(
    ("status", "transient"), [(503, True), (502, True), (400, False), (422, False)]
)
def test_an_http_status_from_chroma_is_retried_only_when_it_may_pass(
    status: int, transient: bool
) -> None:
    import httpx

    from tasks.errors import is_transient

    request = httpx.Request("POST", "http://127.0.0.1:8000/api/v2/update")
    response = httpx.Response(status, request=request)
    error = httpx.HTTPStatusError(str(status), request=request, response=response)
    assert is_transient(error) is transient
