"""Take docs/img/flower-tasks.png (and flower-workers.png) after a small real run.

Run from the repository root (needs the ``redis-server`` binary and Debian's
``chromium``; not part of the test suite)::

    python docs/screenshot_flower.py [--out docs/img/flower-tasks.png]

It starts its own redis-server and moto on free ports (so it touches no Redis
in use), two workers (lines, words) sending their events there, ``chromasync
flower`` on a free port, seeds receipts, lets
the seeded inserts flow, edits every receipt's merchant, then points headless
Chromium at ``/tasks`` and ``/workers`` with basic auth in the URL and stops
everything.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chromasync.core.keys import image_pk, receipt_sk  # noqa: E402
from chromasync.local import MotoServer, RedisServer, free_port, wait_for  # noqa: E402
from chromasync.seed import demo_receipts, merchant_fields  # noqa: E402
from tests.stack import Stack  # noqa: E402

USER, PASSWORD = "admin", "screenshot"


def chromium_screenshot(url: str, out: Path, profile: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        sys.exit("chromium is missing: apt-get update && apt-get install -y chromium")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1400,900",
            # The task table arrives by XHR after the page loads: give it time.
            "--virtual-time-budget=5000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "flower-tasks.png")
    parser.add_argument("--receipts", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flower-shot-"))
    redis_server = RedisServer.start(work)
    events_url = redis_server.url
    moto = MotoServer.start(log=work / "moto.log")
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        **moto.client_env(),
        "CHROMASYNC_TABLE": f"receipts-{suffix}",
        "CHROMASYNC_QUEUE_PREFIX": f"shot{suffix}-",
        "CHROMASYNC_CHROMA_DIR": str(work / "chroma"),
        "CHROMASYNC_LOCK_URL": events_url,
        "CHROMASYNC_CHECKPOINT_URL": f"dynamodb://checkpoints-{suffix}",
        "CHROMASYNC_EVENTS_URL": events_url,
        "CHROMASYNC_FLOWER_USER": USER,
        "CHROMASYNC_FLOWER_PASSWORD": PASSWORD,
        "ANONYMIZED_TELEMETRY": "False",
    }
    os.environ.update(env)  # the producer app in this process reads it
    port = free_port()
    flower = subprocess.Popen(
        [sys.executable, "-m", "chromasync.cli", "flower", "--port", str(port)],
        env=env,
        stdout=open(work / "flower.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    stack = Stack(env, work)
    try:
        import redis

        events = redis.Redis.from_url(events_url)
        wait_for(lambda: events.exists("_kombu.binding.celeryev"), 30, what="flower")
        receipts = demo_receipts(args.receipts, lines=3, words_per_line=4)
        stack.seed(receipts)
        stack.start_workers()
        poller = stack.poller()
        stack.drain(poller)
        for index, spec in enumerate(receipts):
            stack.table.put_item(
                Item={
                    "PK": image_pk(spec.image_id),
                    "SK": f"{receipt_sk(spec.receipt_id)}#METADATA",
                    **merchant_fields(index, 2),
                }
            )
            stack.drain(poller)  # one record per round: several small tasks to show
        args.out.parent.mkdir(parents=True, exist_ok=True)
        base = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}"
        workers_png = args.out.with_name("flower-workers.png")
        chromium_screenshot(f"{base}/tasks", args.out, work / "chromium")
        chromium_screenshot(f"{base}/workers", workers_png, work / "chromium")
        print(f"wrote {args.out} and {workers_png} (logs in {work})")
        return 0
    finally:
        flower.terminate()
        flower.wait(10)
        stack.stop()
        moto.stop()
        redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
