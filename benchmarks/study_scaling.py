"""Study runner scaling: throughput of 2 dask workers against 1, and what the runner itself costs.

``python -m benchmarks.study_scaling [--study quick] [--fractions 0.0,0.5,0.8] [--seeds 0,1]``
runs the same study (fresh output folders, a subset of its grid if asked) on a ``LocalCluster``
of 1 and of 2 single-threaded workers and prints, as JSON and as a table:

* ``throughput`` (tasks per second of wall time) of each, and their ratio;
* ``io``: the time the tasks spent reading and writing their files (dense states, partial
  checkpoints, results), as each task measured it in the run (``io_time`` of its manifest record,
  :data:`studies.point.IO_CLOCK`);
* ``compute``: the sum of the tasks' own wall times (from the manifest) less ``io``;
* ``overhead``: ``workers x wall - compute - io``, the time workers were not running a task
  (start-up and shut-down of the workers, scheduling, waiting for dependencies at the end of
  the graph), of which ``cluster``: ``workers x`` the seconds the ``LocalCluster`` took to start
  and to close (a fixed cost per run, whatever the study's size);
* ``merge``: the time :func:`studies.merge.merge` takes on the finished study;
* ``runner_cost``: ``(io + overhead + merge) / compute``, what the runner costs on top of the
  training and evaluation it schedules; ``runner_cost_in_run``: the same without ``cluster``.

Numba is warmed in this process first (:func:`studies.runner.warm_numba`), as the CLI does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

__all__ = ["measure", "main"]


def measure(spec, workers: int) -> dict:
    """Run ``spec`` on ``workers`` local workers and return the quantities of the module docstring."""
    from studies import manifest
    from studies.merge import merge
    from studies.runner import local_client, run_study
    from studies.tasks import build_graph

    t0 = time.perf_counter()
    with local_client(workers) as client:
        t_up = time.perf_counter()
        result = run_study(spec, client=client)
        t_done = time.perf_counter()
        client.cluster.close()
    wall = time.perf_counter() - t0
    cluster = workers * (wall - (t_done - t_up))
    graph = build_graph(spec)
    records = [manifest.read_record(spec.output, t) for t in graph.tasks.values()]
    io_seconds = sum(r.io_time for r in records)
    compute = sum(r.wall_time for r in records) - io_seconds
    t1 = time.perf_counter()
    merge(spec)
    merge_seconds = time.perf_counter() - t1
    n = len(graph.tasks)
    overhead = workers * wall - compute - io_seconds
    return {
        "workers": workers, "tasks": n, "failed": result.count("failed"), "wall": wall, "throughput": n / wall,
        "compute": compute, "io": io_seconds, "overhead": overhead, "cluster": cluster, "merge": merge_seconds,
        "runner_cost": (io_seconds + overhead + merge_seconds) / compute,
        "runner_cost_in_run": (io_seconds + overhead - cluster + merge_seconds) / compute,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default="quick", help="built-in study name (default quick)")
    parser.add_argument("--fractions", help="comma-separated subset of the pruning fractions")
    parser.add_argument("--seeds", help="comma-separated subset of the seeds")
    parser.add_argument("--output", help="write the JSON here")
    args = parser.parse_args(argv)
    from studies.builtin import builtin_spec
    from studies.runner import warm_numba

    root = Path(tempfile.mkdtemp(prefix="study-scaling-"))
    base = builtin_spec(args.study, output=str(root / "warm"))
    if args.fractions:
        base = replace(base, pruning_fractions=tuple(float(f) for f in args.fractions.split(",")))
    if args.seeds:
        base = replace(base, seeds=tuple(int(s) for s in args.seeds.split(",")))
    warm_numba(base)
    rows = [measure(replace(base, output=str(root / f"w{w}")), w) for w in (1, 2)]
    ratio = rows[1]["throughput"] / rows[0]["throughput"]
    report = {"study": args.study, "fractions": list(base.pruning_fractions), "seeds": list(base.seeds),
              "rows": rows, "throughput_ratio": ratio}
    print(f"{'workers':>7} {'tasks':>5} {'wall s':>8} {'tasks/s':>8} {'compute s':>9} {'io %':>6} "
          f"{'overhead %':>10} {'(cluster %)':>11} {'merge %':>7} {'runner %':>8} {'in run %':>8}")
    for r in rows:
        c = r["compute"]
        print(f"{r['workers']:>7} {r['tasks']:>5} {r['wall']:>8.1f} {r['throughput']:>8.3f} {c:>9.1f} "
              f"{100 * r['io'] / c:>6.1f} {100 * r['overhead'] / c:>10.1f} {100 * r['cluster'] / c:>11.1f} "
              f"{100 * r['merge'] / c:>7.2f} {100 * r['runner_cost']:>8.1f} {100 * r['runner_cost_in_run']:>8.1f}")
    print(f"throughput ratio 2 workers / 1 worker: {ratio:.2f}")
    if args.output:
        Path(args.output).write_text(json.dumps(report, indent=1))
    shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
