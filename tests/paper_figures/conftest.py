"""Synthetic datasets in the schemas the figures expect, and the repository root on sys.path
(``paper_figures`` is not an installed package: it is run as ``python -m paper_figures`` from the
repository)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dilution.io  # noqa: E402

POINT_DIMS = ("protocol", "pruning_time", "pruning_fraction", "n_hidden", "seed")
PROTOCOLS = {"init": ("init", ["0"]), "after": ("after", ["20", "converged"]),
             "scratch": ("scratch", ["20", "converged"])}
TIMES = ["0", "20", "converged"]
FRACTIONS = [0.0, 0.3, 0.5, 0.7, 0.9]
SIZES = [4, 8]
SEEDS = [0, 1, 2]


def _attrs(long_name: str, units: str) -> dict:
    return {"long_name": long_name, "units": units}


def make_merged(seed: int = 0) -> xr.Dataset:
    """A merged study: each protocol has points only at its pruning times; one point unconverged,
    one unfinished (NaN)."""
    rng = np.random.default_rng(seed)
    shape = (len(PROTOCOLS), len(TIMES), len(FRACTIONS), len(SIZES), len(SEEDS))
    step = -8.0 - 4.0 / (1 + np.exp(-(np.array(FRACTIONS) - 0.6) / 0.05))
    quality = np.broadcast_to(step[:, None, None], shape).copy() + rng.normal(0, 0.2, shape)
    finished = np.zeros(shape, dtype=bool)
    for p, (_, times) in enumerate(PROTOCOLS.values()):
        for t in times:
            finished[p, TIMES.index(t)] = True
    finished[1, 1, 2, 1, 0] = False  # after, "20", fraction 0.5, 8 hidden, seed 0: not finished
    quality[~finished] = np.nan
    converged = finished.copy()
    converged[1, 1, 3, 1, 2] = False  # after, "20", fraction 0.7, 8 hidden, seed 2: hit the epoch budget
    spec = {"name": "synthetic", "protocols": {n: {"kind": k} for n, (k, _) in PROTOCOLS.items()}}
    return xr.Dataset(
        {
            "test_log_likelihood": (POINT_DIMS, quality, _attrs("mean test log-likelihood", "nats per sample")),
            "test_log_likelihood_se": (POINT_DIMS, np.full(shape, 0.01), _attrs("standard error", "nats per sample")),
            "converged": (POINT_DIMS, converged, _attrs("stopping rule fired", "1")),
            "finished": (POINT_DIMS, finished, _attrs("point finished", "1")),
            "epochs_used": (POINT_DIMS, np.full(shape, 30), _attrs("epochs trained", "epochs")),
            "teacher_test_log_likelihood": ((), -7.5, _attrs("teacher test log-likelihood", "nats per sample")),
            "independent_test_log_likelihood": ((), -12.5, _attrs("independent test log-likelihood",
                                                                  "nats per sample")),
        },
        coords={
            "protocol": ("protocol", list(PROTOCOLS), _attrs("pruning protocol", "1")),
            "pruning_time": ("pruning_time", TIMES, _attrs("pruning time (epoch, or converged)", "1")),
            "pruning_fraction": ("pruning_fraction", FRACTIONS, _attrs("fraction of connections pruned", "1")),
            "n_hidden": ("n_hidden", SIZES, _attrs("hidden units", "1")),
            "seed": ("seed", SEEDS, _attrs("replica seed", "1")),
        },
        attrs={"study": "synthetic", "git_commit": "0123abcd", "dilution_version": "0.1.0",
               "spec": json.dumps(spec)},
    )


def make_transition() -> xr.Dataset:
    """A transition table: located for every (protocol, time) with data except after at "converged"."""
    dims = ("protocol", "pruning_time", "n_hidden")
    shape = (len(PROTOCOLS), len(TIMES), len(SIZES))
    location = 0.55 + 0.01 * np.arange(np.prod(shape)).reshape(shape)
    width = 0.05 + 0.002 * np.arange(np.prod(shape)).reshape(shape)
    verdict = np.full(shape, "insufficient data", dtype=object)
    for p, (_, times) in enumerate(PROTOCOLS.values()):
        for t in times:
            verdict[p, TIMES.index(t)] = "transition"
    verdict[1, 2] = "no step"
    data = {"verdict": (dims, verdict.astype(str), _attrs("verdict", "1"))}
    for name, centre, half in (("location", location, 0.04), ("width", width, 0.01)):
        data[name] = (dims, centre, _attrs(f"transition {name}", "1"))
        data[f"{name}_lower"] = (dims, centre - half, _attrs(f"lower bound of {name}", "1"))
        data[f"{name}_upper"] = (dims, centre + 2 * half, _attrs(f"upper bound of {name}", "1"))
    return xr.Dataset(data, coords={
        "protocol": ("protocol", list(PROTOCOLS), _attrs("pruning protocol", "1")),
        "pruning_time": ("pruning_time", TIMES, _attrs("pruning time", "1")),
        "n_hidden": ("n_hidden", SIZES, _attrs("hidden units", "1")),
    }, attrs={"study": "synthetic", "git_commit": "0123abcd"})


def make_masks() -> xr.Dataset:
    """A mask summary (analysis.masks.mask_summary) over protocol x fraction x size: degrees of 16
    visible units (a 4 x 4 image) out of 5 hidden units; the teacher overlap per seed."""
    rng = np.random.default_rng(1)
    degree = rng.integers(0, 6, (2, 3, 2, 16)).astype(float)
    degree[1, :, 1] = np.nan  # protocol "after" has no masks at 8 hidden units
    recall = rng.uniform(0.2, 1.0, (2, 3, 2, 3))
    return xr.Dataset(
        {"mean_visible_degree": (("protocol", "pruning_fraction", "n_hidden", "visible"), degree,
                                 _attrs("connections of each visible unit, mean over seeds", "1")),
         "teacher_recall": (("protocol", "pruning_fraction", "n_hidden", "seed"), recall,
                            _attrs("fraction of the teacher's connections kept (hidden units matched)", "1")),
         "teacher_chance_recall": (("protocol", "pruning_fraction", "n_hidden", "seed"), recall / 3,
                                   _attrs("teacher recall of random masks of the same size", "1")),
         "consensus_frequency": (("visible", "hidden"), np.zeros((16, 5)), _attrs("seeds keeping it", "1"))},
        coords={"protocol": ("protocol", ["init", "after"], _attrs("pruning protocol", "1")),
                "pruning_fraction": ("pruning_fraction", [0.1, 0.5, 0.9], _attrs("fraction of connections pruned",
                                                                                 "1")),
                "n_hidden": ("n_hidden", [4, 8], _attrs("hidden units", "1")),
                "seed": ("seed", [0, 1, 2], _attrs("replica seed", "1")),
                "visible": ("visible", np.arange(16), _attrs("visible unit index", "1")),
                "hidden": ("hidden", np.arange(5), _attrs("hidden unit index", "1"))})


def make_ncg() -> xr.Dataset:
    rng = np.random.default_rng(2)
    dims = ("implementation", "initial_density", "seed", "epoch")
    epochs = [0, 10, 200, 1000]
    shape = (2, 2, 4, len(epochs))
    return xr.Dataset(
        {"density": (dims, rng.uniform(0.1, 1, shape), _attrs("fraction of connected pairs", "1")),
         "nll": (dims, rng.uniform(3, 6, shape), _attrs("exact negative log-likelihood", "nats per sample"))},
        coords={"implementation": ("implementation", ["dilution", "reference-quirks"], _attrs("implementation", "1")),
                "initial_density": ("initial_density", [1.0, 0.5], _attrs("initial density p", "1")),
                "seed": ("seed", np.arange(4), _attrs("seed", "1")),
                "epoch": ("epoch", epochs, _attrs("epochs trained", "epochs"))},
        attrs={"study": "ncg-reference", "git_commit": "0123abcd"})


def make_deep_r() -> xr.Dataset:
    rng = np.random.default_rng(3)
    dims = ("method", "connectivity", "seed")
    return xr.Dataset(
        {"test_log_likelihood": (dims, rng.normal(-100, 3, (4, 3, 4)), _attrs("test log-likelihood (AIS)",
                                                                                "nats per sample"))},
        coords={"method": ("method", ["deep-r", "static", "magnitude", "dense"], _attrs("method", "1")),
                "connectivity": ("connectivity", [0.01, 0.02, 0.05], _attrs("fraction of connected pairs", "1")),
                "seed": ("seed", np.arange(4), _attrs("seed", "1"))})


def make_aging() -> xr.Dataset:
    """make_deep_r's methods at doubling budgets (with NCG) and the mask overlap with the previous budget:
    deep-r flat (aging), ncg-p0.5 falling, static and dense 1, magnitude below 1 (a run per budget)."""
    rng = np.random.default_rng(5)
    dims = ("method", "connectivity", "seed", "epochs")
    methods, conn, epochs = ["deep-r", "static", "magnitude", "dense", "ncg-p0.5"], [0.01, 0.02, 0.05], [1, 2, 4, 8]
    shape = (len(methods), len(conn), 4, len(epochs))
    overlap = np.ones(shape)
    overlap[0] = 0.79 + rng.normal(0, 0.01, shape[1:])
    overlap[2] = 0.9
    overlap[4] = np.array([1.0, 0.8, 0.6, 0.5])  # NCG: one run per seed, repeated along connectivity
    overlap[..., 0] = np.nan  # no previous budget
    chance = np.broadcast_to(np.array([0.01, 0.02, 0.05])[:, None, None], shape).copy()
    chance[3] = 1.0
    chance[4] = 0.4
    chance[..., 0] = np.nan
    return xr.Dataset(
        {"test_log_likelihood": (dims, rng.normal(-100, 3, shape), _attrs("test log-likelihood (AIS)",
                                                                         "nats per sample")),
         "mask_overlap": (dims, overlap, _attrs("mask overlap C(t_w, t): |A & B| / sqrt(|A| |B|)", "1")),
         "mask_overlap_chance": (dims, chance, _attrs("chance level of mask_overlap", "1"))},
        coords={"method": ("method", methods, _attrs("method", "1")),
                "connectivity": ("connectivity", conn, _attrs("fraction of connected pairs", "1")),
                "seed": ("seed", np.arange(4), _attrs("seed", "1")),
                "epochs": ("epochs", epochs, _attrs("training budget in epochs", "1")),
                "uses_connectivity": ("method", np.array([1, 1, 1, 0, 0], dtype=np.int8),
                                      _attrs("trained at the connectivity (1) or repeated along it (0)", "1"))})


def make_inclusion() -> xr.Dataset:
    rng = np.random.default_rng(4)
    return xr.Dataset(
        {"inclusion": (("method", "visible", "hidden"), rng.random((4, 4, 2)),
                       _attrs("marginal inclusion probability", "1"))},
        coords={"method": ("method", ["deep-r", "soft-deep-r", "ncg", "reference"], _attrs("method", "1")),
                "visible": ("visible", np.arange(4), _attrs("visible unit", "1")),
                "hidden": ("hidden", np.arange(2), _attrs("hidden unit", "1"))})


def make_divergence() -> xr.Dataset:
    """mask_divergence results stacked over (estimator, steps), with a band on the total variation only."""
    dims = ("estimator", "steps")
    steps = np.array([1e3, 1e4, 1e5])
    d = np.array([[0.5, 0.1, 0.02], [0.6, 0.3, 0.25]])
    return xr.Dataset(
        {"kl_reference_estimate": (dims, 2 * d, _attrs("KL(reference || estimate) over masks", "nats")),
         "kl_reference_estimate_floor": (dims, np.full((2, 3), 0.01), _attrs("noise floor of KL (mean)", "nats")),
         "kl_reference_estimate_floor_upper": (dims, np.full((2, 3), 0.02), _attrs("noise floor of KL (95%)",
                                                                                    "nats")),
         "total_variation": (dims, d, _attrs("total variation distance over masks", "1")),
         "total_variation_lower": (dims, 0.8 * d, _attrs("lower end of the 95% interval", "1")),
         "total_variation_upper": (dims, 1.3 * d, _attrs("upper end of the 95% interval", "1"))},
        coords={"estimator": ("estimator", ["exact", "cd-1"], _attrs("gradient estimator", "1")),
                "steps": ("steps", steps, _attrs("updates", "updates"))})


def make_ising() -> xr.Dataset:
    """Couplings of a dense and a pruned model on 9 visible units (a 3 x 3 image)."""
    rng = np.random.default_rng(5)
    j = rng.normal(0, 0.5, (2, 9, 9))
    j = (j + j.transpose(0, 2, 1)) / 2
    j[1] *= rng.random((9, 9)) < 0.3
    j[1] = np.triu(j[1], 1) + np.triu(j[1], 1).T
    j[:, np.arange(9), np.arange(9)] = 0
    return xr.Dataset(
        {"coupling": (("model", "visible", "visible_2"), j,
                      _attrs("effective pairwise coupling J_jk (symmetric, zero diagonal)", "1"))},
        coords={"model": ("model", ["dense", "pruned 0.7"], _attrs("model", "1")),
                "visible": ("visible", np.arange(9), _attrs("visible unit index j", "1")),
                "visible_2": ("visible_2", np.arange(9), _attrs("visible unit index k", "1"))})


def make_samples() -> xr.Dataset:
    """Samples of three models (fractions), 20 samples each of 12 visible units (image_shape 3 x 4)."""
    rng = np.random.default_rng(6)
    return xr.Dataset(
        {"samples": (("pruning_fraction", "sample", "visible"), (rng.random((3, 20, 12)) < 0.4).astype(np.uint8),
                     {**_attrs("final visible state of each chain", "1"), "image_shape": [3, 4]})},
        coords={"pruning_fraction": ("pruning_fraction", [0.0, 0.5, 0.9],
                                     _attrs("fraction of connections pruned", "1"))})


def make_gap() -> xr.Dataset:
    """A gap table (analysis.transition.gap_table) over pruning_time x pruning_fraction x n_hidden."""
    rng = np.random.default_rng(7)
    dims = ("pruning_time", "pruning_fraction", "n_hidden")
    gap = rng.normal(0, 0.3, (len(TIMES), len(FRACTIONS), len(SIZES)))
    gap[0] = np.nan  # no scratch at initialisation
    return xr.Dataset(
        {"gap": (dims, gap, _attrs("mean quality of a minus mean quality of b", "nats per sample")),
         "gap_lower": (dims, gap - 0.2, _attrs("lower confidence bound of the gap", "nats per sample")),
         "gap_upper": (dims, gap + 0.3, _attrs("upper confidence bound of the gap", "nats per sample"))},
        coords={"pruning_time": ("pruning_time", TIMES, _attrs("pruning time", "1")),
                "pruning_fraction": ("pruning_fraction", FRACTIONS, _attrs("fraction of connections pruned", "1")),
                "n_hidden": ("n_hidden", SIZES, _attrs("hidden units", "1"))})


def make_history(log_likelihood, steps=(0, 1, 4, 16)) -> xr.Dataset:
    """A history.nc as `dilution train` writes it, reduced to what the figure reads."""
    n = len(steps)
    return xr.Dataset(
        {
            "log_likelihood": ("checkpoint", np.asarray(log_likelihood, dtype=float),
                               _attrs("mean exact log-likelihood of the training set", "nats")),
            "reconstruction_error": ("checkpoint", np.linspace(0.3, 0.1, n), _attrs("reconstruction error", "1")),
        },
        coords={"step": ("checkpoint", np.array(steps), _attrs("parameter updates done", "updates"))},
    )


def make_discretisation(prior: bool = False) -> xr.Dataset:
    """Deviations (rule, learning_rate, statistic) with 95 % intervals, as studies.stationary writes
    them: ``count`` is 0 exactly for deep-r, one interval straddles 0, the rest exclude it."""
    names = ["count", "l1"] if prior else ["log_likelihood", "count", "l1"]
    eta = np.array([0.4, 0.2, 0.1])
    dev = np.empty((2, 3, len(names)))
    for j, name in enumerate(names):
        dev[:, :, j] = {"log_likelihood": -0.1 * eta, "count": 0.5 * eta, "l1": 0.3 * np.sqrt(eta)}[name]
    half = np.full(dev.shape, 0.01)
    dev[0, :, names.index("count")] = half[0, :, names.index("count")] = 0.0
    half[1, 2, names.index("l1")] = 0.5  # soft-deep-r, smallest rate: the interval includes 0
    cube = ("rule", "learning_rate", "statistic")
    see = _attrs("stationary mean minus the reference", "see statistic_units")
    return xr.Dataset(
        {"deviation": (cube, dev, see),
         "deviation_lower": (cube, dev - half, _attrs("lower end of the 95% interval", "see statistic_units")),
         "deviation_upper": (cube, dev + half, _attrs("upper end of the 95% interval", "see statistic_units")),
         "reference": (("rule", "statistic"), np.zeros((2, len(names))),
                       _attrs("exact prior-only stationary mean" if prior else "reference posterior mean",
                              "see statistic_units"))},
        coords={"rule": ("rule", ["deep-r", "soft-deep-r"], _attrs("rewiring rule", "1")),
                "learning_rate": ("learning_rate", eta, _attrs("learning rate eta", "1")),
                "statistic": ("statistic", names, _attrs("statistic", "1")),
                "statistic_long_name": ("statistic", [f"the {n}" for n in names], _attrs("what it is", "1")),
                "statistic_units": ("statistic", ["nats" if n == "log_likelihood" else "1" for n in names],
                                    _attrs("units of the statistic", "1"))},
        attrs={"git_commit": "0123abcd"})


def make_estimator_bias(rule: str = "soft-deep-r", seed: int = 0) -> xr.Dataset:
    """Inclusion differences (estimator, visible, hidden) with 95 % intervals."""
    rng = np.random.default_rng(seed)
    cube = ("estimator", "visible", "hidden")
    diff = rng.normal(0, 0.02, (4, 3, 2))
    half = rng.uniform(0.005, 0.02, diff.shape)
    return xr.Dataset(
        {"difference": (cube, diff, _attrs("inclusion probability minus the reference", "1")),
         "difference_lower": (cube, diff - half, _attrs("lower end of the 95% interval", "1")),
         "difference_upper": (cube, diff + 1.5 * half, _attrs("upper end of the 95% interval", "1"))},
        coords={"estimator": ("estimator", ["exact", "cd-1", "cd-10", "pcd"], _attrs("gradient estimator", "1")),
                "visible": ("visible", np.arange(3), _attrs("visible unit", "1")),
                "hidden": ("hidden", np.arange(2), _attrs("hidden unit", "1"))},
        attrs={"rule": rule, "git_commit": "0123abcd"})


def write_all(data: Path) -> Path:
    """Every input of every figure under ``data`` (the layout of paper_figures.registry)."""
    files = {f"study-{study}/{name}": make(study) for study in ("quick", "teacher", "mnist")
             for name, make in (("study.nc", lambda s: make_merged().assign_attrs(study=s)),
                                ("transition.nc", lambda s: make_transition().assign_attrs(study=s)),
                                ("masks.nc", lambda s: make_masks()), ("ising.nc", lambda s: make_ising()),
                                ("samples.nc", lambda s: make_samples()), ("gap.nc", lambda s: make_gap()))}
    files.update({
        "rewiring-ncg.nc": make_ncg(), "rewiring-mnist.nc": make_deep_r(), "rewiring-mnist-500.nc": make_aging(),
        "stationary-inclusion.nc": make_inclusion(), "stationary-divergence.nc": make_divergence(),
        "stationary-divergence-soft-deep-r.nc": make_divergence(),
        "stationary-discretisation.nc": make_discretisation(),
        "stationary-discretisation-prior.nc": make_discretisation(prior=True),
        "stationary-estimator-bias.nc": make_estimator_bias("soft-deep-r"),
        "stationary-estimator-bias-deep-r.nc": make_estimator_bias("deep-r", seed=1),
        "train-a/history.nc": make_history([-5.0, -4.0, -3.5, -3.2]),
        "train-b/history.nc": make_history([-5.5, -4.5, -3.0, -2.9]),
    })
    for rel, ds in files.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        dilution.io.save(ds, data / rel)
    return data


@pytest.fixture(autouse=True)
def _close_figures():
    """Every figure a test left open is closed after it (the Agg backend is chosen above, before any
    test module imports pyplot)."""
    yield
    plt.close("all")


@pytest.fixture
def figures_data(tmp_path) -> Path:
    return write_all(tmp_path / "figures-data")


@pytest.fixture
def synthetic():
    """The builders above (test modules cannot import a conftest under --import-mode=importlib)."""
    import types

    return types.SimpleNamespace(merged=make_merged, transition=make_transition, masks=make_masks, ncg=make_ncg,
                                 deep_r=make_deep_r, aging=make_aging, inclusion=make_inclusion,
                                 divergence=make_divergence, ising=make_ising, samples=make_samples, gap=make_gap,
                                 history=make_history, write_all=write_all,
                                 discretisation=make_discretisation, estimator_bias=make_estimator_bias)
