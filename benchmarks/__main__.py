"""Run the benchmark: ``python -m benchmarks [--quick] [--rounds N] [--out results.json]``.

Threads are pinned to 2 for every contender (numba, OpenBLAS, torch) before anything is
imported. Contenders are interleaved inside each round; a warm-up call precedes the timed ones;
each row reports the median over rounds and, for ratios, the median of the same-round ratios.
Before every timed call the harness sleeps ``PAUSE`` seconds, so that the thread pools the
previous contender left spinning (OpenBLAS, OpenMP) are idle and do not slow the next one.
"""

from __future__ import annotations

import os

THREADS = os.environ.get("DILUTION_BENCH_THREADS", "2")
for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = THREADS

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks import contenders  # noqa: E402


PAUSE = 0.3


def _timed(run, *args) -> float:
    """Seconds of one call, started after ``PAUSE`` seconds of idling."""
    time.sleep(PAUSE)
    t = time.perf_counter()
    run(*args)
    return time.perf_counter() - t


def _median(xs):
    return float(np.median(xs)) if len(xs) else float("nan")


def gibbs_grid(args, model_of, results):
    dtypes = ["float32"] if args.quick else ["float32", "float64"]
    batches = [1, 100, 1000] if args.quick else [1, 100, 1000, 5000]
    conns = [1.0, 0.05] if args.quick else [1.0, 0.5, 0.2, 0.1, 0.05, 0.02]
    for dt in dtypes:
        for conn in conns:
            rbm = model_of(dt, conn)
            for b in batches:
                cs = contenders.gibbs_contenders(rbm, b, with_dense=(conn == 1.0))
                n_sweeps = max(2, int(args.work // (b * 784 * 500)))
                rates = {name: [] for name in cs}
                for _ in range(args.rounds + 1):  # first round is the warm-up
                    for name, run in cs.items():
                        rates[name].append(b * n_sweeps / _timed(run, n_sweeps))
                rates = {k: v[1:] for k, v in rates.items()}
                row = {"dtype": dt, "connectivity": conn, "n_chains": b, "n_sweeps": n_sweeps,
                       "chain_sweeps_per_s": {k: _median(v) for k, v in rates.items()},
                       "min": {k: float(min(v)) for k, v in rates.items()},
                       "max": {k: float(max(v)) for k, v in rates.items()},
                       "ratio_engine_over": {k: _median(np.array(rates["engine"]) / np.array(v))
                                             for k, v in rates.items() if k != "engine"}}
                results["gibbs"].append(row)
                print(f"{dt} c={conn:<5} B={b:<5} "
                      + "  ".join(f"{k}={v:,.0f}" for k, v in row["chain_sweeps_per_s"].items())
                      + " | engine/x: " + " ".join(f"{k}={v:.2f}" for k, v in row["ratio_engine_over"].items()),
                      flush=True)


def exact_rows(args, results):
    from dilution import RBM, exact

    for n_h in (20, 25):
        rbm = RBM.random(784, n_h, weight_scale=0.05, bias_scale=0.5, dtype=np.float64, seed=n_h)
        exact.log_partition(RBM.random(784, 12, seed=0))  # compile
        t = time.perf_counter()
        log_z = exact.log_partition(rbm)
        dt = time.perf_counter() - t
        results["exact"].append({"n_hidden": n_h, "seconds": dt, "log_z": log_z})
        print(f"exact log Z 784 x {n_h}: {dt:.2f} s", flush=True)


def training_rows(args, cd25, results):
    """One PCD-10 epoch (60k samples, N_h = 500, batch 100, 1000 persistent chains), extrapolated
    from ``n_updates`` updates; contenders interleaved, medians over rounds."""
    data = contenders.mnist_binary(args.data)
    n_updates = 20 if args.quick else 60
    batch = data[: n_updates * 100]
    scale = 600 / n_updates
    runs = {}
    from dilution.estimators import PCD
    from dilution.training import TrainConfig, train

    cfg = TrainConfig(estimator=PCD(10, n_chains=1000), epochs=1, batch_size=100, learning_rate=0.01,
                      checkpoints=(), exact_log_likelihood=False, dtype="float32")
    runs["engine"] = lambda: train((784, 500), batch, cfg, seed=0, progress=False)
    if contenders.torch is not None:
        runs["torch"] = lambda: contenders.torch_pcd_epoch(batch, n_chains=1000, k=10)
    if contenders.BBRBM is not None:
        runs["rbms"] = lambda: contenders.rbms_pcd_epoch(batch, n_chains=1000, k=10)
    seconds = {name: [] for name in runs}
    for _ in range(max(3, args.rounds) + 1):  # first round is the warm-up
        for name, run in runs.items():
            seconds[name].append(_timed(run) * scale)
    seconds = {k: v[1:] for k, v in seconds.items()}
    results["pcd_epoch_seconds"] = {k: _median(v) for k, v in seconds.items()}
    results["pcd_epoch_speedup_engine_over"] = {
        k: _median(np.array(v) / np.array(seconds["engine"])) for k, v in seconds.items() if k != "engine"}
    print(f"PCD-10 epoch seconds (extrapolated from {n_updates} updates):", results["pcd_epoch_seconds"],
          "engine speed-up:", results["pcd_epoch_speedup_engine_over"], flush=True)


def rewiring_rows(args, results):
    """One DEEP R update at 784 x 500 (PCD-10, batch 100, float32, the 784 x 500 campaign's
    settings) at 1, 2 and 5 % connectivity, against the same rule made to read the gradient of
    every pair (what the trainer did before ``reads_absent_gradient``) and against the dense
    model's update; contenders interleaved, medians over rounds."""
    import dataclasses
    from typing import ClassVar

    from dilution.deep_r import DeepR, deep_r_config
    from dilution.estimators import PCD
    from dilution.training import TrainConfig, init_state, train

    @dataclasses.dataclass(frozen=True)
    class ReadingEveryPair(DeepR):
        reads_absent_gradient: ClassVar[bool] = True

    data = contenders.mnist_binary(args.data)[:10_000]
    n_updates = 20 if args.quick else 50
    common = dict(estimator=PCD(10), batch_size=100, learning_rate=0.05, checkpoints=1, epochs=1,
                  exact_log_likelihood=False, checkpoint_log_likelihood="none", dtype="float32")
    rows = []
    for connectivity in (0.01, 0.02, 0.05):
        k = round(connectivity * 784 * 500)
        configs = {"engine": deep_r_config(DeepR(k=k, alpha=0.0, temperature=1e-4), **common),
                   "every pair": deep_r_config(ReadingEveryPair(k=k, alpha=0.0, temperature=1e-4), **common),
                   "dense model": TrainConfig(**common)}
        # the runs continue a state 10 updates in, so that the timed updates are past the first mask moves
        starts = {name: train(None, data, None, resume=init_state((784, 500), data, cfg, seed=0), until=10,
                              progress=False).state for name, cfg in configs.items()}

        def run(state):
            return train(None, data, None, resume=state, until=10 + n_updates, progress=False)

        seconds = {name: [] for name in configs}
        for _ in range(max(3, args.rounds) + 1):  # first round is the warm-up
            for name in configs:
                seconds[name].append(_timed(run, starts[name]) / n_updates)
        seconds = {name: v[1:] for name, v in seconds.items()}
        row = {"connectivity": connectivity, "update_ms": {name: 1e3 * _median(v) for name, v in seconds.items()},
               "speedup_engine_over": {name: _median(np.array(v) / np.array(seconds["engine"]))
                                       for name, v in seconds.items() if name != "engine"}}
        rows.append(row)
        print("DEEP R update:", row, flush=True)
    results["deep_r_update"] = rows


def tiny_training_row(args, results):
    """Updates per second of the training loop on a tiny model (bars-and-stripes 4x4, 16 hidden,
    batch 5, CD-1): what studies and rewiring run by the million. The reference, timed in the
    same rounds, is a bare loop over the same kernels (positive phase, one Gibbs sweep,
    statistics, SGD step) without the training state, rule, reconstruction error and history:
    their ratio is the driver's overhead."""
    import numba

    from dilution.conditionals import hidden_probabilities
    from dilution.data import bars_stripes
    from dilution.estimators import CD
    from dilution.gibbs import gibbs_kernel
    from dilution.parameters import Parameters
    from dilution.rng import chain_keys
    from dilution.statistics import gradient_statistics
    from dilution.training import TrainConfig, initialize, train

    data = bars_stripes.sample(4, 2000, seed=0).astype(np.float64)
    epochs = 2 if args.quick else 5
    n_updates = epochs * 2000 // 5
    cfg = TrainConfig(estimator=CD(1), epochs=epochs, batch_size=5, learning_rate=0.05, checkpoints=1,
                      exact_log_likelihood=False)
    sgd = cfg.optimizer()

    def bare():
        # One numba thread, as the trainer uses for work this small (a parallel region costs more).
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            bare_loop()
        finally:
            numba.set_num_threads(threads)

    def bare_loop():
        rbm = initialize(16, 16, data, seed=0)
        params = Parameters(rbm.weights, rbm.visible_bias, rbm.hidden_bias, rbm.mask)
        state = sgd.init(params)
        keys, beta, base = chain_keys(0, 5), np.ones(5), np.zeros(16)
        for t in range(n_updates):
            v = data[(t * 5) % 2000 : (t * 5) % 2000 + 5]
            w, a, b, _ = params
            ph = hidden_probabilities(v, w, b, 1.0)
            v_k, _ = gibbs_kernel(v, w, np.ascontiguousarray(w.T), a, b, beta, base, keys, np.uint64(t * 32), 1)
            grad = gradient_statistics(v, ph, v_k, hidden_probabilities(v_k, w, b, 1.0))
            params, state = sgd.update(params, state, grad, t, n_updates)

    runs = {"engine": lambda: train((16, 16), data, cfg, seed=0, progress=False), "bare kernels": bare}
    rates = {name: [] for name in runs}
    for _ in range(args.rounds + 1):  # first round is the warm-up
        for name, run in runs.items():
            rates[name].append(n_updates / _timed(run))
    rates = {k: v[1:] for k, v in rates.items()}
    results["tiny_training"] = {
        "updates_per_s": {k: _median(v) for k, v in rates.items()},
        "engine_over_bare": _median(np.array(rates["engine"]) / np.array(rates["bare kernels"])),
    }
    print("tiny-model training (bars-and-stripes 4x4, 16 hidden, batch 5, CD-1), updates/s:",
          results["tiny_training"], flush=True)


def replicas_row(args, results):
    """Replica-updates per minute of :func:`dilution.replicas.run_replicas` on the 4 x 2 model
    (2 x 2 bars-and-stripes, exact gradient; issue 12 asks for 10^7 per minute on 2 cores), against
    the per-replica Python loop of the rule path (``dilution.training.train`` with the same config,
    one run per replica), timed in the same rounds. Quick: DEEP R only, fewer updates."""
    from dilution.data import bars_stripes
    from dilution.deep_r import DeepR, SoftDeepR
    from dilution.ncg import NCG
    from dilution.replicas import replica_seeds, run_replicas, trainer_config
    from dilution.training import train

    data = bars_stripes.patterns(2).astype(np.float64)
    rules = {"DeepR": (DeepR(k=4, alpha=0.05, temperature=0.02), 0.05)}
    if not args.quick:
        rules["SoftDeepR"] = (SoftDeepR(alpha=0.05, temperature=0.02, p0=0.5), 0.05)
        rules["NCG"] = (NCG(p=0.5), 0.5)
    n_replicas, steps = (256, 2000) if args.quick else (1024, 10000)
    ref_replicas, ref_steps = (2, 100) if args.quick else (4, 250)
    results["replicas"] = []
    for name, (rule, lr) in rules.items():
        config = trainer_config(rule, data.shape[0], ref_steps, learning_rate=lr)
        seeds = replica_seeds(0, ref_replicas)

        def kernel():
            run_replicas(rule, n_replicas, data, steps, steps, init=(4, 2), learning_rate=lr, seed=0)

        def python_loop():
            for s in seeds:
                train((4, 2), data, config, seed=int(s), progress=False)

        runs = {"kernel": (kernel, n_replicas * steps), "python loop": (python_loop, ref_replicas * ref_steps)}
        rates = {k: [] for k in runs}
        cpu = []
        for _ in range(args.rounds + 1):  # first round is the warm-up (and the compilation)
            for k, (run, work) in runs.items():
                c0 = time.process_time()
                rates[k].append(work * 60.0 / _timed(run))
                if k == "kernel":
                    cpu.append(work * 60.0 / (time.process_time() - c0))
        rates = {k: v[1:] for k, v in rates.items()}
        row = {"rule": name, "model": "4 x 2", "gradient": "exact", "n_replicas": n_replicas, "steps": steps,
               "replica_steps_per_min": {k: _median(v) for k, v in rates.items()},
               "kernel_replica_steps_per_cpu_min": _median(cpu[1:]),
               "kernel_over_python_loop": _median(np.array(rates["kernel"]) / np.array(rates["python loop"]))}
        results["replicas"].append(row)
        print(f"replicas {name} 4x2 exact: " + "  ".join(f"{k}={v:,.0f}/min" for k, v in
                                                        row["replica_steps_per_min"].items())
              + f" | per CPU-minute {row['kernel_replica_steps_per_cpu_min']:,.0f}"
              + f" | kernel/loop {row['kernel_over_python_loop']:.0f}", flush=True)


def ais_row(args, cd25, results):
    try:
        from dilution.ais import log_partition
    except ImportError as e:
        print(f"AIS: skipped ({e})")
        return
    n_betas = 1450 if args.quick else 14500
    betas = np.linspace(0, 1, n_betas + 1)
    import warnings

    with warnings.catch_warnings():  # a 16-beta compile run has degenerate weights, by design
        warnings.simplefilter("ignore")
        log_partition(cd25, n_chains=20, betas=np.linspace(0, 1, 16), seed=0, reverse=False, progress=False)
    t = time.perf_counter()
    log_partition(cd25, n_chains=500, betas=betas, seed=0, reverse=False, progress=False)
    sec = (time.perf_counter() - t) * 14500 / n_betas
    results["ais_seconds_500x14500"] = sec
    print(f"AIS 500 chains x 14,500 betas (forward; extrapolated from {n_betas}): {sec:.0f} s", flush=True)
    ais_checkpoint_rows(args, cd25, results)


def ais_checkpoint_rows(args, cd25, results):
    """The cost of log_partition's checkpoint: time with a checkpoint over time without, per round (the
    two interleaved), median over rounds; at the default interval and at the worst case, a write after
    every chunk of about a second (checkpoint_every=0)."""
    import tempfile

    from dilution.ais import CHECKPOINT_EVERY, log_partition

    betas = np.linspace(0, 1, 301 if args.quick else 1451)
    kw = dict(n_chains=500, betas=betas, seed=0, reverse=False, progress=False)
    ratios = {"default": [], "every_chunk": []}
    import warnings

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 300 linear betas on CD25: degenerate weights, not what is timed
        for r in range(args.rounds):
            plain = _timed(lambda: log_partition(cd25, **kw))
            for name, every in (("default", CHECKPOINT_EVERY), ("every_chunk", 0.0)):
                path = Path(folder) / f"{name}-{r}.npz"  # a new file: a finished one would skip the run
                ratios[name].append(_timed(lambda: log_partition(cd25, **kw, checkpoint=path,
                                                                 checkpoint_every=every)) / plain)
    results["ais_checkpoint_overhead"] = {name: _median(v) for name, v in ratios.items()}
    print(f"AIS checkpoint, time with / without (500 chains x {betas.size - 1} betas, median of {args.rounds}): "
          f"default interval {_median(ratios['default']):.3f}, a write per chunk {_median(ratios['every_chunk']):.3f}",
          flush=True)


def memory_row(results):
    """Peak RSS growth of one B = 5000 sweep, in a fresh process that has compiled the kernels on a
    tiny batch, against the arrays the sweep must hold (input states, output states, hidden
    states). The peak is reset just before the sweep (``/proc/self/clear_refs``), so an earlier
    peak (imports, compilation) cannot hide the sweep's own."""
    code = (
        "import numpy as np;"
        "from benchmarks.contenders import cd25;"
        "from dilution import gibbs;from dilution.rng import chain_keys;"
        "r=cd25('float32',1.0);wt=np.ascontiguousarray(r.weights.T);"
        "run=lambda B,v: gibbs.gibbs_kernel(v,r.weights,wt,r.visible_bias,r.hidden_bias,np.ones(B,np.float32),"
        "np.zeros(784,np.float32),chain_keys(0,B),np.uint64(0),2);"
        "run(8,np.zeros((8,784),np.float32));"
        "B=5000;v=(np.random.default_rng(0).random((B,784))<.5).astype(np.float32);keys=chain_keys(0,B);"
        "st=lambda k: int(next(l for l in open('/proc/self/status') if l.startswith(k)).split()[1])*1024;"
        "open('/proc/self/clear_refs','w').write('5');"
        "m0=st('VmRSS:');out=run(B,v);m1=st('VmHWM:');"
        "print(m0, m1, v.nbytes + out[0].nbytes + out[1].nbytes)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    try:
        before, after, needed = (int(x) for x in out.stdout.split())
    except ValueError:
        print("memory row failed:", out.stderr[-500:])
        return
    results["memory"] = {"rss_growth_bytes": after - before, "arrays_bytes": needed,
                         "ratio": (after - before) / needed}
    print(f"peak RSS growth of a B=5000 sweep: {(after - before) / 2**20:.1f} MiB; "
          f"arrays held {needed / 2**20:.1f} MiB; ratio {(after - before) / needed:.2f}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("--quick", action="store_true", help="headline configurations only")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved rounds; ratios are taken within a round, medians over rounds (default 5)")
    p.add_argument("--work", type=float, default=2e9, help="multiply-adds per timed call (default 2e9)")
    p.add_argument("--data", default="../shared/data/mnist/mnist.npz",
                   help="MNIST mnist.npz for the training and rewiring benchmarks (default "
                        "../shared/data/mnist/mnist.npz)")
    p.add_argument("--out", default="benchmark_results.json",
                   help="JSON file for the results (default benchmark_results.json)")
    p.add_argument("--only", default="gibbs,exact,train,rewiring,tiny,replicas,ais,memory",
                   help="comma-separated benchmark groups to run (default: all, "
                        "gibbs,exact,train,rewiring,tiny,replicas,ais,memory)")
    args = p.parse_args(argv)
    import numba

    from dilution.threads import openblas_libraries

    results = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "python": sys.version.split()[0], "numpy": np.__version__, "numba": numba.__version__},
        "threads": {"numba": numba.config.NUMBA_NUM_THREADS, "openblas": openblas_libraries(),
                    "torch": contenders.torch.get_num_threads() if contenders.torch else None},
        "command": " ".join(["python -m benchmarks"] + (argv if argv is not None else sys.argv[1:])),
        "gibbs": [], "exact": [],
    }
    print(json.dumps({k: results[k] for k in ("date", "machine", "threads")}, indent=1), flush=True)
    only = set(args.only.split(","))
    if "gibbs" in only:
        gibbs_grid(args, contenders.cd25, results)
    if "exact" in only:
        exact_rows(args, results)
    if "train" in only:
        training_rows(args, contenders.cd25("float32", 1.0), results)
    if "rewiring" in only:
        rewiring_rows(args, results)
    if "tiny" in only:
        tiny_training_row(args, results)
    if "replicas" in only:
        replicas_row(args, results)
    if "ais" in only:
        ais_row(args, contenders.cd25("float64", 1.0), results)
    if "memory" in only:
        memory_row(results)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
