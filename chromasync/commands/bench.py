"""``chromasync bench``: the pipeline against Chroma's own limit and the per-message design."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: Default Redis for the benchmark's locks, checkpoints, metrics and events (not the
#: tests' 14/15, not the demo's 0).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"


def register(sub: Any) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure throughput, lag and producer CPU against their baselines (moto, Redis)",
        description="Start moto (server mode) and an embedded Chroma directory, seed receipts, "
        "and measure in one run: the sink's limit (raw Chroma updates, 1,000 ids per call), "
        "the per-message baseline, chromasync end to end on single-embedding changes and "
        "on a realistic mix, end-to-end lag at 50 and 200 changes/s, and the producer's "
        "CPU against a bare TypeDeserializer loop, per-process CPU, and the AWS cost "
        "model (requests counted per kind of change, both designs). Prints a table with "
        "the ratios, writes JSON and a PNG chart. Needs redis-server (--redis-url). "
        "--table dynalite runs the throughput workloads with the source table on dynalite "
        "(a DynamoDB stand-in that serves reads in parallel) instead.",
    )
    size = bench.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help="smaller run, about three minutes (the cost section included)",
    )
    size.add_argument(
        "--smoke", action="store_true", help="tiny run for tests: every section, no real figures"
    )
    bench.add_argument(
        "--workdir",
        default=".chromasync/bench",
        help="Chroma directory, logs (default: %(default)s)",
    )
    bench.add_argument("--json", help="where the results go (default: WORKDIR/bench-PROFILE.json)")
    bench.add_argument(
        "--chart",
        help="PNG chart path (default: WORKDIR/bench-PROFILE.png; needs matplotlib, "
        "pip install 'chromasync[bench]')",
    )
    bench.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="Redis for locks, checkpoints, metrics, events (default: %(default)s)",
    )
    bench.add_argument(
        "--lag-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="worker environment for the lag runs, e.g. CHROMASYNC_POLLING_INTERVAL=0.1",
    )
    bench.add_argument(
        "--idle-sleep", type=float, help="the stream poller's pause when idle, for the lag runs"
    )
    bench.add_argument(
        "--profile",
        metavar="DIR",
        help="run chromasync's workers under cProfile and write their profiles to DIR "
        "(CHROMASYNC_PROFILE; python -m pstats reads them); the figures of such a run are "
        "slowed by the profiler",
    )
    bench.add_argument(
        "--table",
        choices=("moto", "dynalite"),
        default="moto",
        help="where the source table lives: moto (every section, the default) or dynalite "
        "(the throughput workloads only, fed through the Lambda handler, beside the same "
        "workloads on moto; needs node and make tools, which installs dynalite)",
    )
    bench.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from benchmarks.run import PROFILES, command_line, run_bench
    from chromasync.core.config import ConfigError
    from chromasync.local import redis_answers

    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    if not redis_answers(args.redis_url):
        raise ConfigError(f"--redis-url {args.redis_url} does not answer (start redis-server)")
    if args.table == "dynalite":
        return _on_dynalite(args, name, command_line())
    knobs = {}
    for pair in args.lag_env:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--lag-env {pair!r} is not NAME=VALUE")
        knobs[key] = value
    workdir = Path(args.workdir)
    report = run_bench(
        PROFILES[name],
        workdir,
        args.redis_url,
        command_line(),
        echo=lambda line: print(line, flush=True),
        knobs=knobs or None,
        idle_sleep=args.idle_sleep,
        profile_dir=Path(args.profile).resolve() if args.profile else None,
    )
    json_path = Path(args.json) if args.json else workdir / f"bench-{name}.json"
    chart_path = Path(args.chart) if args.chart else workdir / f"bench-{name}.png"
    report.write_json(json_path)
    print()
    print(report.render())
    print()
    print(f"results: {json_path}")
    if args.profile:
        print(f"profiles: {args.profile} (the figures above include the profiler's cost)")
    if report.chart(chart_path):
        print(f"chart:   {chart_path}")
    else:
        print("chart:   not drawn (matplotlib is missing: pip install 'chromasync[bench]')")
    return 0


def _on_dynalite(args: argparse.Namespace, name: str, command: str) -> int:
    """``--table dynalite``: :mod:`benchmarks.parallel_table` with this command's options."""
    from benchmarks import table_standin
    from benchmarks.parallel_table import main as parallel_table
    from chromasync.core.config import ConfigError

    for option in ("chart", "lag_env", "idle_sleep", "profile"):
        if getattr(args, option):
            raise ConfigError(
                f"--{option.replace('_', '-')} applies to the moto run only, not --table dynalite"
            )
    if not table_standin.installed():
        raise ConfigError(
            "--table dynalite: dynalite is not installed (make tools, or "
            "python -c 'from benchmarks import table_standin; table_standin.install()'; "
            "needs node and npm)"
        )
    argv = ["--redis-url", args.redis_url, "--workdir", args.workdir]
    if name != "full":
        argv.append(f"--{name}")
    if args.json:
        argv += ["--json", args.json]
    return parallel_table(argv, command=command)
