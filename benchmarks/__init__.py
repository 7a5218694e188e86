"""``chromasync bench``: how close the pipeline comes to Chroma's own limit, measured in one run.

Every figure is a ratio against a baseline measured in the same run on the same
machine (sink limit, per-message design, bare deserializer loop), because absolute
numbers on a shared 2-core machine move from run to run; the ratios hold.

Modules, one concern each:

* :mod:`benchmarks.workload` — the receipts and the table writes of each workload,
  with what Chroma must show once each write is applied;
* :mod:`benchmarks.stack` — moto, Redis, the embedded Chroma directory, worker and
  poller processes, visibility checks;
* :mod:`benchmarks.sink` — raw Chroma metadata updates, the ceiling of every design;
* :mod:`benchmarks.baseline` / :mod:`benchmarks.baseline_producer` — the per-message
  design chromasync replaces (worker task and its one-message-per-record producer);
* :mod:`benchmarks.poll_process` — a stream poller in its own process;
* :mod:`benchmarks.throughput`, :mod:`benchmarks.lag`, :mod:`benchmarks.producer_cpu` —
  the measured sections;
* :mod:`benchmarks.report` — ratios, targets, the printed table, JSON and the chart;
* :mod:`benchmarks.run` — the profiles (smoke, quick, full) and the order of sections.
"""
