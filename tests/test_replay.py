"""``chromasync replay``: a Lambda event file, NDJSON on stdin, bad lines, failures, progress."""

from __future__ import annotations

import io
import json
import os
import pty
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from chromasync.core.config import Settings
from chromasync.local import free_port
from producers.replay_input.model import BROKEN, CUT_SHORT, UNREADABLE, UNREADABLE_HEAD_BYTES
from producers.replay_input.shape import read_input
from tests.producing import Queues, line_record, record


def replay(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chromasync.cli", "replay", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def sequences(queues: Queues, collection: str = "lines") -> list[int]:
    return [c.sequence_int for t in queues.tasks(collection) for c in t.batch.changes]


def test_replay_of_a_lambda_event_file(producer_env: dict[str, str], tmp_path: Path) -> None:
    queues = Queues(Settings.from_env())
    records = [line_record("INSERT", s, line=s) for s in range(1, 8)]
    records.append(record("INSERT", "USER#1", "PROFILE", 8, new={"a": 1}))
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"Records": records}, indent=2))
    result = replay(producer_env, str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "(Lambda event)" in out
    assert "records           8" in out
    assert "changes           7" in out
    assert "tasks sent        1 (lines 1)" in out
    assert "ignored           1 (not_an_entity 1)" in out
    assert "failed            none" in out
    assert sequences(queues) == list(range(1, 8))


def test_replay_of_ndjson_on_stdin_with_a_bad_line(producer_env: dict[str, str]) -> None:
    queues = Queues(Settings.from_env())
    getrecords_shape = line_record("MODIFY", 4, line=4)
    getrecords_shape["dynamodb"]["ApproximateCreationDateTime"] = "2026-11-22T04:56:18+00:00"
    del getrecords_shape["dynamodb"]["OldImage"]
    lines = [
        json.dumps(line_record("INSERT", 1)),
        "",
        '{"eventName": "INSERT", "dynamodb": {"Keys": ',  # line 3: cut off, not JSON
        json.dumps(getrecords_shape),
        json.dumps({"eventName": "INSERT", "dynamodb": {"SequenceNumber": "9"}}),
        json.dumps(line_record("REMOVE", 6, line=6)),
    ]
    result = replay(producer_env, "--chunk-size", "2", "-", stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "replay of stdin (NDJSON)" in out
    assert "records           5" in out
    assert "changes           3" in out
    assert "malformed         2 (2 quarantined in" in out
    assert "line 3: not JSON" in out
    assert "line 5: dynamodb.Keys is missing" in out
    assert "\r" not in result.stderr  # no progress bar when stderr is not a terminal
    assert sequences(queues) == [1, 4, 6]
    kept = queues.quarantined()
    assert [m["source"] for m in kept] == ["replay", "replay"]
    assert kept[0]["error"].startswith("line 3: not JSON")
    assert kept[0]["record"] == {"text": lines[2]}
    assert kept[1]["record"]["dynamodb"] == {"SequenceNumber": "9"}


def test_a_failed_publish_exits_1_and_says_from_which_line(
    producer_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    env = {**producer_env, "CELERY_BROKER_URL": f"sqs://testing:testing@127.0.0.1:{port}"}
    Queues(Settings.from_env())
    lines = [json.dumps(record("INSERT", "USER#1", "PROFILE", 1, new={"a": 1}))]
    lines += [json.dumps(line_record("INSERT", s, line=s)) for s in range(2, 8)]
    result = replay(env, "--chunk-size", "3", "-", stdin="\n".join(lines))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed            from line 2 on" in result.stdout
    assert f"sqs://127.0.0.1:{port}" in result.stdout
    # It stopped at the first failed chunk: the rest of the input was not read.
    assert "records           3" in result.stdout


def test_a_wrong_setting_exits_2_naming_the_variable(
    producer_env: dict[str, str], tmp_path: Path
) -> None:
    result = replay({**producer_env, "CHROMASYNC_FIFO": "maybe"}, "-", stdin="")
    assert result.returncode == 2
    assert "CHROMASYNC_FIFO='maybe'" in result.stderr
    missing = replay(producer_env, str(tmp_path / "nowhere.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_progress_bar_on_a_terminal(producer_env: dict[str, str], tmp_path: Path) -> None:
    Queues(Settings.from_env())
    path = tmp_path / "records.ndjson"
    path.write_text("".join(json.dumps(line_record("INSERT", s)) + "\n" for s in range(1, 6)))
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "chromasync.cli", "replay", "--chunk-size", "2", str(path)],
            env=producer_env,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            timeout=60,
        )
        os.close(terminal)
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    assert result.returncode == 0, result.stdout
    text = drawn.decode()
    assert "\rreplay [" in text
    assert "100%  5 records" in text


def _kind(data: bytes) -> tuple[str, list[Any]]:
    source = read_input(io.BytesIO(data), len(data))
    items = [item for item, _fraction in source.items]
    return source.kind, [(i.position, i.error is None) for i in items]


def test_input_shapes_are_told_apart() -> None:
    one = line_record("INSERT", 1)
    pretty = json.dumps({"Records": [one, one]}, indent=2).encode()
    assert _kind(pretty) == ("Lambda event", [(1, True), (2, True)])
    assert _kind(json.dumps({"Records": [one]}).encode()) == ("Lambda event", [(1, True)])
    assert _kind(b"\xef\xbb\xbf \n" + json.dumps({"Records": [one]}).encode())[0] == (
        "Lambda event"
    )
    # "Records" not the first key (read whole), on one line or spread over lines.
    later = {"NextShardIterator": "x", "Records": [one, one]}
    assert _kind(json.dumps(later).encode()) == ("Lambda event", [(1, True), (2, True)])
    assert _kind(json.dumps(later, indent=2).encode()) == ("Lambda event", [(1, True), (2, True)])
    assert _kind(json.dumps([one, one, one]).encode())[0] == "JSON list of records"
    assert _kind(json.dumps(one, indent=1).encode()) == ("JSON record", [(1, True)])
    ndjson = b"\n" + json.dumps(one).encode() + b"\n\n" + json.dumps(one).encode() + b"\n"
    assert _kind(ndjson) == ("NDJSON", [(2, True), (4, True)])
    first_broken = b'{"cut": \n' + json.dumps(one).encode() + b"\n"
    assert _kind(first_broken) == ("NDJSON", [(1, False), (2, True)])
    assert _kind(b"hello\nworld\n") == ("unreadable", [])
    assert _kind(b"\n\n") == ("empty input", [])


def cut_event(records: list[dict[str, Any]], keep: int) -> bytes:
    """A Lambda event of ``records`` that ends halfway through record ``keep + 1``."""
    whole = json.dumps({"Records": records[:keep]})[:-2]  # without the closing "]}"
    return (whole + ", " + json.dumps(records[keep])[:60]).encode()


def test_how_reading_stopped_is_told() -> None:
    records = [line_record("INSERT", s, line=s) for s in range(1, 13)]
    cut = read_input(io.BytesIO(cut_event(records, 11)))
    assert [item.record for item, _ in cut.items] == json.loads(json.dumps(records[:11]))
    assert cut.problem is not None and cut.problem.kind == CUT_SHORT
    assert (cut.problem.after, cut.problem.offset) == (11, len(cut_event(records, 11)))
    assert cut.problem.detail == "parse error: premature EOF"

    body = json.dumps({"Records": records}).encode()
    at = body.index(b'{"eventID": "event-6"')
    broken = read_input(io.BytesIO(body[:at] + b"\x00\x17garbage" + body[at:]))
    assert len(list(broken.items)) == 5
    assert broken.problem is not None and broken.problem.kind == BROKEN
    assert broken.problem.after == 5 and "invalid char" in broken.problem.detail

    noise = random.Random(10).randbytes(100_000)
    for data in (noise, b"[" + noise, b'{"Records": [' + noise):
        source = read_input(io.BytesIO(data))
        assert list(source.items) == []
        assert source.problem is not None and source.problem.kind == UNREADABLE, data[:20]
        assert source.problem.head == data[: len(source.problem.head)]
        assert 0 < len(source.problem.head) <= UNREADABLE_HEAD_BYTES


def test_records_are_handed_on_before_the_input_has_ended() -> None:
    """The parser is incremental: the first record arrives while half the event is unwritten.

    A real pipe; the writer holds the second half back until the reader has
    had its first record. A parser that needs the whole document would wait for
    the end of the input, which does not come until then (30 s, then the test fails).
    """
    records = [line_record("INSERT", s, line=s % 1000) for s in range(1, 2001)]
    body = json.dumps({"Records": records}).encode()
    half = len(body) // 2
    assert half > 4 * 64 * 1024  # more than a pipe holds, and than one read asks for
    first_seen = threading.Event()
    waited: list[bool] = []
    readable, writable = os.pipe()

    def write() -> None:
        with os.fdopen(writable, "wb") as out:
            out.write(body[:half])
            out.flush()
            waited.append(first_seen.wait(30))
            out.write(body[half:])

    writer = threading.Thread(target=write)
    writer.start()
    with os.fdopen(readable, "rb") as stream:
        source = read_input(stream)
        first, _fraction = next(source.items)
        first_seen.set()
        rest = [item for item, _fraction in source.items]
    writer.join(30)
    assert waited == [True], "the first record came only after the whole input"
    assert first.position == 1 and first.record["eventID"] == "event-1"
    assert len(rest) == 1999 and source.problem is None


def test_a_cut_short_event_publishes_what_it_holds_and_exits_1(
    producer_env: dict[str, str], tmp_path: Path
) -> None:
    queues = Queues(Settings.from_env())
    records = [line_record("INSERT", s, line=s) for s in range(1, 13)]
    path = tmp_path / "event.json"
    path.write_bytes(cut_event(records, 11))
    result = replay(producer_env, "--chunk-size", "4", str(path))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "(Lambda event)" in out
    assert "records           11" in out and "changes           11" in out
    assert "malformed         0 (0 quarantined" in out
    assert f"input             cut short at byte {path.stat().st_size:,}, inside record 12" in out
    assert "records 1-11 were read and are counted above; the rest is not in the input" in out
    assert "failed            none" in out
    assert sequences(queues) == list(range(1, 12))
    assert queues.quarantined() == []
    assert "reading " + str(path) + " as Lambda event" in result.stderr


def test_a_broken_event_publishes_what_comes_before_and_exits_1(
    producer_env: dict[str, str],
) -> None:
    queues = Queues(Settings.from_env())
    records = [line_record("INSERT", s, line=s) for s in range(1, 9)]
    body = json.dumps(records)  # a JSON list, on stdin
    at = body.index('{"eventID": "event-6"')
    result = replay(producer_env, "-", stdin=body[:at] + "\u0001" + body[at:])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "(JSON list of records)" in result.stdout
    assert "input             broken before byte " in result.stdout
    assert ", after record 5 (lexical error: invalid char in json text.)" in result.stdout
    assert sequences(queues) == [1, 2, 3, 4, 5]


def test_random_bytes_are_refused_unless_kept_on_purpose(
    producer_env: dict[str, str], tmp_path: Path
) -> None:
    queues = Queues(Settings.from_env())
    noise = random.Random(14).randbytes(100_000)
    for name, data in [("noise", noise), ("bracket", b"[" + noise), ("brace", b"{" + noise)]:
        path = tmp_path / name
        path.write_bytes(data)
        refused = replay(producer_env, str(path))
        assert refused.returncode == 2, (name, refused.stdout, refused.stderr)
        assert refused.stdout == ""
        assert f"chromasync replay: {path} is not stream records: " in refused.stderr
        assert "Nothing was sent; --quarantine-unreadable keeps it" in refused.stderr
    assert queues.all_tasks() == {"lines": [], "words": []}
    assert queues.quarantined() == []

    kept = replay(producer_env, "--quarantine-unreadable", str(tmp_path / "noise"))
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "(unreadable)" in kept.stdout
    assert "malformed         1 (1 quarantined in" in kept.stdout
    assert "input             unreadable: neither JSON nor NDJSON: it starts with b" in kept.stdout
    assert "first 100,000 bytes quarantined as one message" in kept.stdout
    (message,) = queues.quarantined()  # one message, not one per "line"
    assert message["source"] == "replay"
    assert message["error"].startswith("unreadable input, 100,000 first bytes kept")
    assert queues.all_tasks() == {"lines": [], "words": []}
