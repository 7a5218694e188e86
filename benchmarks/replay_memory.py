"""Peak memory of ``chromasync replay`` by input size: the streaming reader against a whole parse.

``python -m benchmarks.replay_memory [--sizes 5,50,200] [--workdir DIR] [--modes stream,whole]``

For each size it writes a Lambda event file of that many MB (one line, as
Lambda and ``json.dumps`` write it: receipt-line MODIFY records with both
images, about 1 KB each), starts moto on 127.0.0.1, and replays the file
through the real pipeline (:class:`~producers.replay.Replayer`, a
``StreamProcessor`` and a ``Publisher`` sending to moto's SQS), once per mode,
each in a fresh child process:

* ``stream`` — :func:`producers.replay_input.shape.read_input`, what ``chromasync replay`` does;
* ``whole`` — the reader before it: the file read and ``json.loads``-ed in one
  piece, then the same records fed to the same Replayer.

The baseline is measured in the same child, after every module the replay uses
was imported and the publisher built, just before the file is opened; the peak
is the child's high-water mark of resident memory from then on (Linux resets it
when ``5`` is written to ``/proc/self/clear_refs``; the child reads ``VmHWM``).
What a reader costs is ``peak - baseline``. The seconds are for orientation
only (moto's SQS is most of them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: File sizes measured by default, in MB (10**6 bytes).
DEFAULT_SIZES = (5, 50, 200)
#: Readers compared by default (see the module docstring).
MODES = ("stream", "whole")
#: Where the generated files go by default (they are kept for reruns).
DEFAULT_WORKDIR = Path(".chromasync/replay-bench")
#: Lines per receipt in the generated records (so packing sees realistic receipts).
LINES_PER_RECEIPT = 40


def _typed(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {k: _typed(v) for k, v in value.items()}}
    return {"S": str(value)}


def line_record(seq: int) -> dict[str, Any]:
    """A Lambda stream record: a receipt line's text and box changed (MODIFY, both images)."""
    receipt, line = divmod(seq, LINES_PER_RECEIPT)
    image = uuid.UUID(int=receipt // 5 + 1)
    keys = {"PK": f"IMAGE#{image}", "SK": f"RECEIPT#{receipt % 5 + 1:05d}#LINE#{line + 1:05d}"}

    def image_of(version: str) -> dict[str, Any]:
        box = {"x": 0.1 + line / 100, "y": 0.2, "width": 0.5, "height": 0.02}
        fields = {
            "text": f"{version} TOTAL DUE 12.{seq % 100:02d} line {line + 1}",
            "confidence": 0.97,
            "bounding_box": box,
            "embedding_status": "SUCCESS",
            "is_noise": False,
            "angle_degrees": 0.5,
        }
        return {k: _typed(v) for k, v in {**keys, **fields}.items()}

    return {
        "eventID": f"bench-{seq}",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1763700000 + seq,
            "Keys": {k: _typed(v) for k, v in keys.items()},
            "NewImage": image_of("new"),
            "OldImage": image_of("old"),
            "SequenceNumber": f"{seq:021d}",
            "SizeBytes": 900,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x",
    }


def write_event(path: Path, megabytes: float) -> int:
    """A one-line Lambda event of at least ``megabytes`` MB at ``path``; the record count.

    Written record by record: the generator itself stays small.
    """
    target = int(megabytes * 1_000_000)
    count = 0
    with open(path, "w") as out:
        out.write('{"Records": [')
        written = 13
        while written < target:
            text = ("" if count == 0 else ", ") + json.dumps(line_record(count))
            out.write(text)
            written += len(text)
            count += 1
        out.write("]}")
    return count


@dataclass(frozen=True)
class Measured:
    mode: str
    megabytes: float
    records: int
    changes: int
    tasks: int
    baseline_mib: float
    peak_mib: float
    seconds: float

    @property
    def cost_mib(self) -> float:
        return self.peak_mib - self.baseline_mib


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(mode: str, path: Path) -> dict[str, Any]:
    """One replay in this process; what it cost (run in a fresh child by :func:`measure`)."""
    import gc

    from chromasync.core.config import Settings
    from producers.pipeline import StreamProcessor
    from producers.publishing import Publisher
    from producers.replay import Replayer
    from producers.replay_input.model import Item, ReplayInput
    from producers.replay_input.shape import read_input

    settings = Settings.from_env()
    replayer = Replayer(StreamProcessor(settings, Publisher(settings), source="bench"))
    gc.collect()
    baseline = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the high-water mark starts again from the current RSS
    started = time.perf_counter()
    with open(path, "rb") as stream:
        if mode == "stream":
            source = read_input(stream, path.stat().st_size)
        else:  # the reader before: the whole document in memory, then parsed at once
            records = json.loads(stream.read())["Records"]
            items = ((Item(i + 1, record=r), (i + 1) / len(records)) for i, r in enumerate(records))
            source = ReplayInput("Lambda event", "record", items)
        report = replayer.run(source)
    seconds = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"replay failed: {report.render(str(path))}")
    return {
        "records": report.records,
        "changes": report.changes,
        "tasks": sum(report.tasks.values()),
        "baseline_kib": baseline,
        "peak_kib": _status_kib("VmHWM"),
        "seconds": seconds,
    }


def measure(mode: str, path: Path, megabytes: float, env: dict[str, str]) -> Measured:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.replay_memory", "--child", mode, str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{mode} {path}: exit {done.returncode}\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(
        mode,
        megabytes,
        got["records"],
        got["changes"],
        got["tasks"],
        got["baseline_kib"] / 1024,
        got["peak_kib"] / 1024,
        got["seconds"],
    )


def render(rows: list[Measured]) -> str:
    out = [
        "chromasync replay, peak resident memory of one process (MiB; baseline = the same "
        "process before reading)",
        f"{'file':>8} {'records':>9} {'tasks':>6} {'mode':>7} {'baseline':>9} {'peak':>8} "
        f"{'peak-base':>10} {'seconds':>8}",
    ]
    for row in rows:
        out.append(
            f"{row.megabytes:>6g}MB {row.records:>9,} {row.tasks:>6,} {row.mode:>7} "
            f"{row.baseline_mib:>9.1f} "
            f"{row.peak_mib:>8.1f} {row.cost_mib:>10.1f} {row.seconds:>8.1f}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay_memory")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="MB, e.g. 5,50")
    parser.add_argument("--modes", default=",".join(MODES), help="stream,whole")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return 0

    from chromasync.core.config import Settings
    from chromasync.local import MotoServer
    from chromasync.provision import ensure_queues

    sizes = [float(s) for s in args.sizes.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    if not set(modes) <= set(MODES):
        parser.error(f"--modes: one or more of {', '.join(MODES)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    moto = MotoServer.start(log=args.workdir / "moto.log")
    rows: list[Measured] = []
    try:
        for megabytes in sizes:
            path = args.workdir / f"event-{megabytes:g}MB.json"
            if not path.exists():
                write_event(path, megabytes)
            for mode in modes:
                # A fresh prefix per run: moto keeps every message, and no run reads another's.
                env = {
                    **os.environ,
                    **moto.client_env(),
                    "CHROMASYNC_QUEUE_PREFIX": f"rb{uuid.uuid4().hex[:8]}-",
                }
                env.pop("CELERY_BROKER_URL", None)
                ensure_queues(Settings.from_env(env))
                rows.append(measure(mode, path, megabytes, env))
                print(render(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
                moto.reset()
    finally:
        moto.stop()
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
