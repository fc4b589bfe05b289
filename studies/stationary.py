"""Where do the rewiring algorithms converge? The stationary-law experiments of issue 12.

Every experiment runs on the 4 x 2 RBM with the six patterns of 2 x 2 bars-and-stripes as data
(``N = 6``) at the Bayesian temperature ``T = 1/N`` (digest ``ncg_deepr.md`` C.6), ``alpha = 2 T``
(prior mean magnitude ``T / alpha = 0.5``). Why this model: its posterior mixes (reference split
R-hat <= 1.01 in seconds), so run length and learning rate can be taken to the noise floor. Its
drawback: the likelihood hardly moves the masks (DEEP R inclusion probabilities measured
0.49-0.51 against the prior's 0.5), and no CD-1 bias of them was found on it. Two-cluster data (30 x ``1111``,
10 each of ``0000``, ``1100``, ``0011``; ``T = 1/60``) has informative masks (reference
inclusion 0.24-0.83) but a multimodal posterior that neither the reference sampler (16 chains x 1000 draws:
weight R-hat 2.7) nor DEEP R (20,000 updates: replica means of ``lbar`` from -2.50 to -2.20)
mixed across at the budget here; at 15/5/5/5 copies a rare strong-weight mode still separates
chains, at 6/2/2/2 the masks are prior-like again. The biases are Langevin-sampled under the Gaussian prior
``bias_l2`` (:class:`analysis.posterior.Posterior`'s default 0.01) and one set of fixed signs
shared by every replica and the reference (digest C.7: compare under the same ``s``). The rules'
dynamics then target exactly the reference's law: DEEP R's ``theta <- theta + eta (s g - alpha)
+ sqrt(2 eta T) nu`` with ``g`` the gradient of the *mean* log-likelihood has the stationary
density ``exp((lbar - alpha theta) / T)`` of :meth:`~analysis.posterior.Posterior.log_density`,
and the biases' ``b <- b + eta (g_b - lambda b) + sqrt(2 eta T) nu`` its
``exp(-(lambda/2) |b|^2 / T)``.

Experiments (:func:`run_experiments`; issue 12, "what it must show", items 2-4):

``stationary-divergence.nc`` (and ``stationary-divergence-soft-deep-r.nc``)
    DEEP R (``K`` fixed; the size-``K`` posterior) and soft-DEEP R: the mask law of the replicas'
    records up to a run length against the reference draws
    (:func:`analysis.stationary.mask_divergence`), stacked over ``estimator`` (exact, CD-1,
    CD-10, PCD-1) and ``steps``, with the noise floors.
``stationary-learning-rate.nc``
    the same divergence, the inclusion probabilities and ``E[lbar]`` at the end of runs of equal
    length in time ``eta * steps`` for ``eta``, ``eta/2``, ``eta/4``: the discretisation bias.
``stationary-estimators.nc``
    per gradient estimator and rule, the inclusion probabilities minus the reference with
    intervals (replica and reference errors in quadrature) and a table: root-mean-square and
    largest deviation, pairs whose interval excludes 0, ``chi2 = sum z^2`` over the pairs.
``stationary-inclusion.nc``
    :func:`analysis.stationary.inclusion_probabilities` stacked over ``method`` (reference =
    the soft-DEEP R posterior, deep-r, soft-deep-r, ncg), each with its own reference map.
``stationary-ncg.nc``
    NCG's final masks over seeds: profile-likelihood rank among masks of their size
    (:func:`analysis.posterior.mask_profiles`, unconstrained signs), regret against the oracle
    mask, the step of the last flip, and across seeds the split R-hat of the likelihood and the
    distance of the modal-size masks from the DEEP R posterior of that size.

Bias experiments (:func:`run_bias_experiments`, ``--bias``; issue 12, items 2 and 3), where the
mask's total variation is too coarse (its noise floor hid every bias above):

``stationary-discretisation.nc``
    :func:`discretisation_bias`: the stationary means of smooth statistics (:data:`STATISTICS`:
    ``E[lbar]``, ``E|M|``, ``E sum |w|``, the mean visible bias) under exact gradients at
    ``eta = 0.4, 0.2, 0.1, 0.05`` with equal ``eta * steps``, minus the reference posterior's,
    and their ratio per halving. Measured (paper scale: 64 replicas, ``eta * steps = 8000``;
    reference split R-hat <= 1.001): soft-DEEP R's ``E sum |w|`` deviates +0.175, +0.072,
    +0.032, +0.002 (reference 1.967 +- 0.007), ratios 2.45 [2.03, 3.07] and 2.21 [1.52, 4.46],
    ``E|M|`` +0.115, +0.043, +0.009, -0.005 (ratio 2.66 [1.98, 4.08]): the ``O(eta)`` of an
    Euler-Maruyama step. DEEP R's ``E sum |w|`` deviates -0.68, -0.51, -0.38, -0.27, ratios
    1.33 [1.30, 1.36], 1.34 [1.31, 1.38], 1.40 [1.34, 1.46]: ``O(sqrt(eta))`` (ratio
    ``sqrt 2``), 14% of the reference at ``eta = 0.05``.
``stationary-discretisation-prior.nc``
    :func:`prior_discretisation_bias`: the same in the prior-only limit, against exact means.
    Measured (paper scale): DEEP R's ``E sum |w|`` 0.736, 0.535, 0.398, 0.287 below ``K T /
    alpha = 2``, ratios 1.38 [1.34, 1.41], 1.35 [1.31, 1.39], 1.39 [1.34, 1.44]; soft-DEEP R's
    +0.214, +0.107, +0.058, +0.016, ratios 2.01 [1.79, 2.28], 1.84 [1.50, 2.29]. So DEEP R's
    ``O(sqrt(eta))`` is the rule's own and not the likelihood's. Our reading (not derived here):
    death below 0 and reactivation at ``theta = 0`` happen only at update times, so freshly
    reactivated pairs crowd a layer of width ``~sqrt(2 eta T)`` above 0, the ``sqrt(h)`` weak
    error of discretely monitored killed diffusions; soft-DEEP R has no killing at 0.
``stationary-estimator-bias.nc``
    :func:`estimator_bias`: per-pair inclusion probabilities of soft-DEEP R under exact, CD-1,
    CD-10 and PCD-1 gradients against the reference, on :func:`copies_setup` (three copies of a
    bit and an independent bit, ``T = 1/128``), where the reference mixes (paper: split R-hat
    1.008 inclusion, 1.03 weights). Measured (64 replicas x 80,000 updates at 0.05): the pair
    (v3, hidden 1) has reference 0.566 +- 0.007, exact 0.563, CD-1 0.510 (difference -0.056
    [-0.073, -0.039], chi2 over pairs 48.8), CD-10 0.546 (-0.019 [-0.037, -0.002], chi2 14.4),
    PCD-1 0.544 (-0.022 [-0.040, -0.004], chi2 18.3), exact chi2 7.3. The bars-and-stripes
    model above shows no such bias (masks stay near the prior there).
``stationary-estimator-bias-deep-r.nc``
    The same for DEEP R with ``K = 7`` (reference inclusion R-hat 1.001): the dormant pair is
    (v3, hidden 0) with reference probability 0.742 +- 0.002, so (v3, 0) and (v3, 1) move
    together, one degree of freedom. (v3, 0): exact 0.268 (+0.010 [+0.001, +0.019], the
    discretisation at 0.05), CD-1 0.306 (+0.048 [+0.040, +0.056]; +0.038 [+0.028, +0.048]
    against exact), CD-10 0.272 (+0.013 [+0.004, +0.022]; +0.003 [-0.007, +0.014] against
    exact), PCD-1 0.270 (+0.012 [+0.004, +0.020]; +0.002 [-0.008, +0.013]).

Every file is written atomically (:func:`dilution.io.save`) with provenance. Run from the shell as
``python -m studies.stationary --scale smoke --out DIR`` (``--bias`` for the bias experiments).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from analysis.posterior import Posterior, mask_profiles, sample_posterior
from analysis.stationary import (
    deviation_ratios,
    effective_sample_size,
    expected_log_likelihood,
    inclusion_probabilities,
    mask_codes,
    mask_divergence,
    split_rhat,
)
from dilution.data import bars_stripes
from dilution.deep_r import DeepR, SoftDeepR, inclusion_probability, prior_dynamics
from dilution.estimators import CD, PCD, Exact
from dilution.io import save
from dilution.ncg import NCG
from dilution.progress import progress_bar
from dilution.provenance import provenance
from dilution.replicas import run_replicas
from dilution.rng import derive_seed
from dilution.validation import check_seed

__all__ = ["Scale", "SCALES", "ESTIMATORS", "stream_seed", "experiment_setup", "fixed_sign_replicas", "run_experiments",
           "BiasScale", "BIAS_SCALES", "STATISTICS", "replica_mean", "discretisation_bias",
           "prior_discretisation_bias", "copies_setup",
           "estimator_bias", "run_bias_experiments", "main"]

_ONE = "1"
_NATS = "nats per sample"


@dataclass(frozen=True)
class Scale:
    """Sizes of one run of the experiments.

    Attributes
    ----------
    replicas : int
        Replicas per rule and gradient estimator.
    steps : int
        Updates per replica at the base learning rate (the longest run length).
    records : int
        Records per replica (``steps / records`` updates apart).
    learning_rate : float
        The base ``eta``; the halving experiment adds ``eta/2`` and ``eta/4`` with 2 and 4 times
        the steps.
    reference_chains, reference_draws, reference_thin, reference_warmup : int
        :func:`analysis.posterior.sample_posterior` settings.
    ncg_seeds, ncg_steps : int
        NCG replicas (seeds) and updates; ``ncg_learning_rate`` its ``eta``.
    ncg_learning_rate : float
    profile_restarts : int
        L-BFGS restarts per mask profile.
    profile_all_sizes : bool
        Profile every mask size NCG ends at (else only the modal size).
    """

    replicas: int
    steps: int
    records: int
    learning_rate: float
    reference_chains: int
    reference_draws: int
    reference_thin: int
    reference_warmup: int
    ncg_seeds: int
    ncg_steps: int
    ncg_learning_rate: float
    profile_restarts: int
    profile_all_sizes: bool


SCALES = {
    "smoke": Scale(replicas=16, steps=2_000, records=400, learning_rate=0.05, reference_chains=16,
                   reference_draws=1_000, reference_thin=2, reference_warmup=500, ncg_seeds=50, ncg_steps=2_000,
                   ncg_learning_rate=0.1, profile_restarts=1, profile_all_sizes=False),
    "paper": Scale(replicas=32, steps=50_000, records=1_000, learning_rate=0.05, reference_chains=32,
                   reference_draws=4_000, reference_thin=5, reference_warmup=2_000, ncg_seeds=100,
                   ncg_steps=20_000, ncg_learning_rate=0.01, profile_restarts=3, profile_all_sizes=True),
}

ESTIMATORS = {"exact": Exact(), "cd-1": CD(k=1), "cd-10": CD(k=10), "pcd": PCD(k=1)}

# DEEP R's budget: half of the 8 pairs, the size with the most masks (70).
_K = 4
_SHAPE = (4, 2)
_BIAS_L2 = 0.01
# DEEP R's budget on copies_setup (its docstring says why).
_COPIES_K = 7


def stream_seed(seed: int, *purpose: str) -> int:
    """The integer seed of one run of the experiments: ``derive_seed(seed, "stationary-experiments", *purpose)``."""
    return int(derive_seed(seed, "stationary-experiments", *purpose).generate_state(1)[0] >> np.uint64(1))


def experiment_setup(seed: int) -> dict:
    """The model of every experiment: data, temperature, prior, signs, and the three rules.

    Returns
    -------
    dict
        ``data`` (6, 4), ``temperature``, ``alpha``, ``theta_min``, ``bias_l2``, ``signs``
        (4, 2) int8 (from ``derive_seed(seed, "stationary-experiments", "signs")``), ``deep_r``,
        ``soft_deep_r`` (rules with those settings), ``k``.
    """
    data = bars_stripes.patterns(2).astype(np.float64)
    temperature = 1.0 / data.shape[0]
    alpha = 2.0 * temperature
    rng = np.random.default_rng(derive_seed(seed, "stationary-experiments", "signs"))
    signs = np.where(rng.random(_SHAPE) < 0.5, -1, 1).astype(np.int8)
    soft = SoftDeepR(alpha=alpha, temperature=temperature, p0=0.5, bias_l2=_BIAS_L2)
    deep = DeepR(k=_K, alpha=alpha, temperature=temperature, bias_l2=_BIAS_L2)
    return dict(data=data, temperature=temperature, alpha=alpha, theta_min=soft.floor_value, bias_l2=_BIAS_L2,
                signs=signs, deep_r=deep, soft_deep_r=soft, k=_K)


def fixed_sign_replicas(rule, signs, n_replicas, data, steps, record_every, *, learning_rate, seed, estimator):
    """:func:`dilution.replicas.run_replicas` with every replica's fixed signs replaced by ``signs``.

    The rules draw their signs from each replica's seed; a comparison with one reference needs
    one sign pattern (digest C.7). The replicas' update-0 state is built by a zero-step run, its
    signs are overwritten and the run continues from it (``resume``): the same draws as a run
    started with those signs, since the kernel rebuilds the weights from ``theta`` and the signs.
    """
    signs = np.asarray(signs, dtype=np.int8)
    start = run_replicas(rule, n_replicas, data, 0, 1, init=signs.shape, learning_rate=learning_rate, seed=seed,
                         estimator=estimator)
    start["sign"] = start["sign"].copy(data=np.broadcast_to(signs, start["sign"].shape).copy())
    return run_replicas(rule, n_replicas, data, steps, record_every, learning_rate=learning_rate, seed=seed,
                        estimator=estimator, resume=start)


def _reference(setup, kind: Literal["soft-deep-r", "deep-r"], scale: Scale, seed: int, k: int | None = None):
    post = Posterior(kind, setup["signs"], setup["alpha"], setup["temperature"], data=setup["data"],
                     theta_min=setup["theta_min"] if kind == "soft-deep-r" else None,
                     n_active=k if kind == "deep-r" else None, bias_l2=setup["bias_l2"])
    return sample_posterior(post, n_chains=scale.reference_chains, n_draws=scale.reference_draws,
                            thin=scale.reference_thin, n_warmup=scale.reference_warmup,
                            seed=stream_seed(seed, "reference", kind, str(k)))


def _burned(ds: xr.Dataset) -> np.ndarray:
    """Masks after the first tenth of the records (burn-in), shape (replica, record, 4, 2)."""
    m = ds["mask"].values
    return m[:, m.shape[1] // 10:]


def _divergence_over_steps(ds: xr.Dataset, reference, steps_grid, n_active, seed) -> xr.Dataset:
    """mask_divergence of the records up to each run length (the initial state excluded)."""
    step = ds["step"].values
    out = []
    for n in steps_grid:
        masks = ds["mask"].values[:, 1:][:, step[1:] <= n]
        div = mask_divergence(masks, reference, n_active=n_active, seed=seed)
        out.append(div.drop_vars(["probability", "reference"]).drop_dims("mask"))
    return xr.concat(out, dim="steps", combine_attrs="override").assign_coords(
        steps=("steps", np.asarray(steps_grid, dtype=np.int64), {"long_name": "run length", "units": "updates"}))


def _estimator_table(masks: np.ndarray, reference_masks: np.ndarray, level: float = 0.95) -> xr.Dataset:
    """Inclusion probabilities minus the reference's, both sampled, with the errors in quadrature."""
    est = inclusion_probabilities(masks, level=level)
    ref = inclusion_probabilities(reference_masks, level=level)
    diff = est["inclusion"] - ref["inclusion"]
    se = np.sqrt(est["standard_error"] ** 2 + ref["standard_error"] ** 2)
    z = 1.959963984540054
    zs = xr.where(se > 0, diff / se, 0.0)
    pair = ("visible", "hidden")
    excludes = (np.abs(diff) > z * se).values
    return xr.Dataset({
        "inclusion": (pair, est["inclusion"].values, {"long_name": "marginal inclusion probability", "units": _ONE}),
        "reference": (pair, ref["inclusion"].values, {"long_name": "reference inclusion probability", "units": _ONE}),
        "difference": (pair, diff.values, {"long_name": "inclusion probability minus the reference", "units": _ONE}),
        "difference_lower": (pair, (diff - z * se).values, {"long_name": "lower end of the 95% interval of the "
                                                                          "difference", "units": _ONE}),
        "difference_upper": (pair, (diff + z * se).values, {"long_name": "upper end of the 95% interval of the "
                                                                          "difference", "units": _ONE}),
        "z_score": (pair, zs.values, {"long_name": "difference over its standard error", "units": _ONE}),
        "rms_deviation": ((), float(np.sqrt((diff.values ** 2).mean())),
                          {"long_name": "root-mean-square inclusion deviation over pairs", "units": _ONE}),
        "max_abs_deviation": ((), float(np.abs(diff.values).max()),
                              {"long_name": "largest absolute inclusion deviation", "units": _ONE}),
        "n_pairs_excluding_zero": ((), int(excludes.sum()),
                                   {"long_name": "pairs whose 95% interval of the difference excludes 0",
                                    "units": _ONE}),
        "chi2": ((), float((zs.values ** 2).sum()),
                 {"long_name": "sum of squared z-scores over pairs (chi2 with 8 dof if unbiased)", "units": _ONE}),
    }, coords={k: v for k, v in est.coords.items()})


def _ll_difference(ds: xr.Dataset, reference_ll: np.ndarray) -> xr.Dataset:
    ll = ds["log_likelihood"].values
    out = expected_log_likelihood(ll[:, ll.shape[1] // 10:], reference=reference_ll)
    return out[["mean", "standard_error", "reference", "difference", "difference_lower", "difference_upper"]]


def _ncg_table(runs: xr.Dataset, setup, scale: Scale, seed: int, k_posterior) -> xr.Dataset:
    """Rank, regret and freeze step of every seed's final mask; R-hat and the size-K distance over seeds."""
    data = setup["data"]
    final = runs["mask"].values[:, -1]
    codes = mask_codes(final[:, None])[:, 0]
    sizes = final.sum(axis=(1, 2))
    modal = int(np.bincount(sizes).argmax())
    profiled = sorted(set(sizes.tolist())) if scale.profile_all_sizes else [modal]
    profiles = mask_profiles(data, _SHAPE, sizes=profiled, n_restarts=scale.profile_restarts,
                             seed=stream_seed(seed, "profiles"))
    table = profiles["profile_log_likelihood"]
    rank = np.full(codes.size, np.nan)
    regret = np.full(codes.size, np.nan)
    n_masks = np.full(codes.size, np.nan)
    profile = np.full(codes.size, np.nan)
    # Masks whose profiles agree within the optimiser's tolerance share a rank.
    tol = 1e-6
    for r, (code, size) in enumerate(zip(codes, sizes)):
        if size not in profiled:
            continue
        same = table.values[profiles["n_active"].values == size]
        mine = float(table.sel(mask=code))
        profile[r] = mine
        rank[r] = 1 + int((same > mine + tol).sum())
        regret[r] = float(same.max()) - mine
        n_masks[r] = same.size
    flips = (runs["connections_added"].values + runs["connections_removed"].values) > 0
    step = runs["step"].values
    last_flip = np.array([step[np.flatnonzero(f)[-1]] if f.any() else 0 for f in flips], dtype=np.int64)
    ll = runs["log_likelihood"].values
    half = ll[:, ll.shape[1] // 2:]
    count = runs["mask"].values.sum(axis=(2, 3))[:, ll.shape[1] // 2:]
    modal_masks = final[sizes == modal][None]
    distance = mask_divergence(modal_masks, k_posterior.masks, n_active=modal, seed=seed) if modal_masks.shape[1] >= 4 \
        else None
    seed_dim = ("seed",)
    ds = xr.Dataset({
        "final_mask": (seed_dim, codes, {"long_name": "code of the final mask (bit k: row-major pair k)",
                                         "units": _ONE}),
        "final_size": (seed_dim, sizes.astype(np.int64), {"long_name": "active connections of the final mask",
                                                          "units": _ONE}),
        "final_log_likelihood": (seed_dim, ll[:, -1], {"long_name": "final mean log-likelihood", "units": _NATS}),
        "profile_log_likelihood": (seed_dim, profile, {"long_name": "profile mean log-likelihood of the final mask",
                                                       "units": _NATS}),
        "rank": (seed_dim, rank, {"long_name": "rank of the final mask among masks of its size by profile "
                                               "likelihood (1 = best; NaN: size not profiled)", "units": _ONE}),
        "n_masks_of_size": (seed_dim, n_masks, {"long_name": "masks of the final mask's size", "units": _ONE}),
        "regret": (seed_dim, regret, {"long_name": "oracle profile likelihood minus the final mask's",
                                      "units": _NATS}),
        "last_flip_step": (seed_dim, last_flip, {"long_name": "update of the last record with a mask flip "
                                                              "(record resolution)", "units": "updates"}),
        "rhat_log_likelihood": ((), split_rhat(half), {"long_name": "split R-hat of the log-likelihood across "
                                                                    "seeds (second half of the run)", "units": _ONE}),
        "rhat_active_count": ((), split_rhat(count), {"long_name": "split R-hat of the active count across seeds "
                                                                   "(second half of the run)", "units": _ONE}),
        "modal_size": ((), modal, {"long_name": "most frequent final mask size", "units": _ONE}),
        "oracle_mask": (("size",), profiles["oracle_mask"].values, {"long_name": "code of the best mask of this "
                                                                                 "size", "units": _ONE}),
        "oracle_log_likelihood": (("size",), profiles["oracle_log_likelihood"].values,
                                  {"long_name": "profile mean log-likelihood of the best mask", "units": _NATS}),
    }, coords={"seed": ("seed", np.arange(codes.size), {"long_name": "NCG replica (seed index)", "units": _ONE}),
               "size": ("size", profiles["size"].values, {"long_name": "active connections", "units": _ONE})})
    if distance is not None:
        for name in ("total_variation", "kl_reference_estimate", "kl_estimate_reference"):
            for suffix in ("", "_floor", "_floor_upper"):
                src = distance[name + suffix]
                ds[f"posterior_{name}{suffix}"] = ((), float(src), {
                    "long_name": f"modal-size NCG masks against the size-K DEEP R posterior: {src.attrs['long_name']}",
                    "units": src.attrs["units"]})
    return ds


def run_experiments(scale: Literal["smoke", "paper"] = "smoke", out: str | Path = ".", seed: int = 0,
                    progress: bool | None = None) -> list[Path]:
    """Run the stationary-law experiments (module docstring) and write their Datasets into ``out``.

    Parameters
    ----------
    scale : "smoke" or "paper"
        :data:`SCALES`; smoke takes about a minute on 2 cores.
    out : path
        An existing folder.
    seed : int
    progress : bool or None
        Report progress on stderr (None: :func:`dilution.progress.progress_bar`'s default).

    Returns
    -------
    list of Path
        The files written.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    seed = check_seed(seed)
    out = Path(out)
    if not out.is_dir():
        raise ValueError(f"out must be an existing folder, got {str(out)!r}")
    sc = SCALES[scale]
    setup = experiment_setup(seed)
    data = setup["data"]
    record_every = max(sc.steps // sc.records, 1)
    rules = {"deep-r": setup["deep_r"], "soft-deep-r": setup["soft_deep_r"]}
    lrs = (sc.learning_rate, sc.learning_rate / 2, sc.learning_rate / 4)
    n_jobs = 3 + len(rules) * len(ESTIMATORS) + 2 + 2
    common = dict(seed=seed, scale=scale, scale_settings=json.dumps(asdict(sc)), model="4 x 2 RBM, bars-and-stripes "
                  "2 x 2 (6 patterns)", temperature=setup["temperature"], alpha=setup["alpha"],
                  theta_min=setup["theta_min"], bias_l2=setup["bias_l2"], deep_r_k=setup["k"],
                  signs=json.dumps(setup["signs"].tolist()))
    paths = []
    with progress_bar(n_jobs, "stationary experiments", enabled=progress) as bar:
        refs = {"soft-deep-r": _reference(setup, "soft-deep-r", sc, seed)}
        bar.update(1)
        refs["deep-r"] = _reference(setup, "deep-r", sc, seed, k=setup["k"])
        bar.update(1)
        runs = {}
        for name, rule in rules.items():
            for est_name, est in ESTIMATORS.items():
                runs[name, est_name] = fixed_sign_replicas(
                    rule, setup["signs"], sc.replicas, data, sc.steps, record_every, learning_rate=sc.learning_rate,
                    seed=stream_seed(seed, name, est_name),
                    estimator=est)
                bar.update(1)
        # Divergence against run length, per estimator (items 2 and 3).
        grid = np.unique(np.geomspace(4 * record_every, sc.steps, 6).round().astype(np.int64))
        for name in rules:
            k = setup["k"] if name == "deep-r" else None
            div = xr.concat([_divergence_over_steps(runs[name, e], refs[name].masks, grid, k, seed)
                             for e in ESTIMATORS], dim="estimator", combine_attrs="override")
            div = div.assign_coords(estimator=("estimator", list(ESTIMATORS), {"long_name": "gradient estimator",
                                                                               "units": _ONE}))
            div.attrs = provenance(title=f"{name}: mask law against the reference posterior as run length grows",
                                   method=name, n_active_slice=k if k is not None else "all",
                                   **_reference_quality(refs[name]), **common)
            suffix = "" if name == "deep-r" else f"-{name}"
            paths.append(save(div, out / f"stationary-divergence{suffix}.nc"))
        # The estimators' inclusion table (item 3).
        tables = []
        for name in rules:
            rows = [_estimator_table(_burned(runs[name, e]), refs[name].masks)
                    .merge(_ll_difference(runs[name, e], refs[name].log_likelihood).rename(
                        {v: f"log_likelihood_{v}" for v in ("mean", "standard_error", "reference", "difference",
                                                            "difference_lower", "difference_upper")}))
                    for e in ESTIMATORS]
            tables.append(xr.concat(rows, dim="estimator", combine_attrs="override"))
        table = xr.concat(tables, dim="method", combine_attrs="override").assign_coords(
            estimator=("estimator", list(ESTIMATORS), {"long_name": "gradient estimator", "units": _ONE}),
            method=("method", list(rules), {"long_name": "rewiring rule", "units": _ONE}))
        table.attrs = provenance(title="stationary inclusion probabilities per gradient estimator against the "
                                       "reference posterior (95% intervals, replica and reference errors in "
                                       "quadrature)", burn_in="first tenth of the records", **common)
        paths.append(save(table, out / "stationary-estimators.nc"))
        # Learning-rate halving at equal time eta * steps (item 2, the discretisation bias).
        rows = []
        for name, rule in rules.items():
            per_lr = []
            for j, lr in enumerate(lrs):
                if j == 0:
                    ds = runs[name, "exact"]
                else:
                    ds = fixed_sign_replicas(
                        rule, setup["signs"], sc.replicas, data, sc.steps * 2**j, record_every * 2**j,
                        learning_rate=lr, estimator=Exact(),
                        seed=stream_seed(seed, name, "lr", str(j)))
                    bar.update(1)
                k = setup["k"] if name == "deep-r" else None
                div = mask_divergence(_burned(ds), refs[name].masks, n_active=k, seed=seed)
                div = div.drop_vars(["probability", "reference"]).drop_dims("mask")
                inc = _estimator_table(_burned(ds), refs[name].masks)
                ll = _ll_difference(ds, refs[name].log_likelihood)
                per_lr.append(xr.merge([div, inc[["rms_deviation", "max_abs_deviation", "n_pairs_excluding_zero",
                                                  "chi2"]],
                                        ll.rename({v: f"log_likelihood_{v}" for v in ll.data_vars})],
                                       combine_attrs="override"))
            rows.append(xr.concat(per_lr, dim="learning_rate", combine_attrs="override"))
        halving = xr.concat(rows, dim="method", combine_attrs="override").assign_coords(
            learning_rate=("learning_rate", np.array(lrs), {"long_name": "learning rate eta", "units": _ONE}),
            method=("method", list(rules), {"long_name": "rewiring rule", "units": _ONE}))
        halving.attrs = provenance(title="residual divergence from the reference as the learning rate halves "
                                         "(equal time eta * steps; exact gradients)", **common)
        paths.append(save(halving, out / "stationary-learning-rate.nc"))
        # NCG over seeds (item 4).
        ncg = run_replicas(NCG(p=0.5), sc.ncg_seeds, data, sc.ncg_steps, max(sc.ncg_steps // 200, 1), init=_SHAPE,
                           learning_rate=sc.ncg_learning_rate,
                           seed=stream_seed(seed, "ncg"))
        bar.update(1)
        modal = int(np.bincount(ncg["mask"].values[:, -1].sum(axis=(1, 2))).argmax())
        refs["ncg"] = refs["deep-r"] if modal == setup["k"] else _reference(setup, "deep-r", sc, seed, k=modal)
        bar.update(1)
        ncg_table = _ncg_table(ncg, setup, sc, seed, refs["ncg"])
        ncg_table.attrs = provenance(title="NCG's final masks over seeds against the profile likelihood of every "
                                           "mask of their size and the DEEP R posterior of the modal size",
                                     ncg_rule=json.dumps(asdict(NCG(p=0.5))), ncg_estimator="exact",
                                     ncg_learning_rate=sc.ncg_learning_rate, ncg_steps=sc.ncg_steps,
                                     profile_sign_constrained=0, **common)
        paths.append(save(ncg_table, out / "stationary-ncg.nc"))
        # Inclusion maps side by side (the figure's file).
        final = ncg["mask"].values[:, -1][None]
        maps = [inclusion_probabilities(refs["soft-deep-r"].masks, reference=_inclusion(refs["soft-deep-r"])),
                inclusion_probabilities(_burned(runs["deep-r", "exact"]), reference=_inclusion(refs["deep-r"])),
                inclusion_probabilities(_burned(runs["soft-deep-r", "exact"]),
                                        reference=_inclusion(refs["soft-deep-r"])),
                inclusion_probabilities(final, reference=_inclusion(refs["ncg"]))]
        inclusion = xr.concat(maps, dim="method", combine_attrs="override").assign_coords(
            method=("method", ["reference", "deep-r", "soft-deep-r", "ncg"],
                    {"long_name": "method", "units": _ONE}))
        inclusion.attrs = provenance(
            title="marginal inclusion probabilities: the soft-DEEP R reference posterior, DEEP R and soft-DEEP R "
                  "(exact gradients, after burn-in) and NCG's final masks over seeds",
            reference_per_method="reference: itself; deep-r: the size-K DEEP R posterior; soft-deep-r: the "
                                 "soft-DEEP R posterior; ncg: the DEEP R posterior at NCG's modal final size",
            ncg_modal_size=modal, **common)
        paths.append(save(inclusion, out / "stationary-inclusion.nc"))
    return paths


def _reference_quality(draws) -> dict:
    """The reference sampler's largest split R-hat (inclusion, weights, likelihood), for the file's attrs."""
    d = draws.diagnostics
    return {"reference_rhat_inclusion_max": float(d["rhat_inclusion"].max()),
            "reference_rhat_weight_max": float(d["rhat_weight"].max()),
            "reference_rhat_log_likelihood": float(d["rhat_log_likelihood"])}


def _inclusion(draws) -> np.ndarray:
    return draws.masks.mean(axis=(0, 1))


# ----------------------------------------------------------------------------------------------
# Biases of the stationary law (issue 12, items 2 and 3): statistics with low noise floors.


@dataclass(frozen=True)
class BiasScale:
    """Sizes of the bias experiments (:func:`discretisation_bias`, :func:`estimator_bias`).

    Attributes
    ----------
    replicas : int
        Independent replicas per run; every standard error of a run is the spread of the
        replicas' time averages over ``sqrt(replicas)``.
    time : float
        ``eta * steps`` of every run of the learning-rate sequence.
    learning_rates : tuple of float
        Each half the one before.
    records : int
        Records per run (the first tenth is burn-in).
    reference_chains, reference_draws, reference_thin, reference_warmup : int
        :func:`analysis.posterior.sample_posterior` settings.
    estimator_steps : int
        Updates per replica of :func:`estimator_bias` (learning rate ``estimator_learning_rate``).
    estimator_learning_rate : float
    """

    replicas: int
    time: float
    learning_rates: tuple[float, ...]
    records: int
    reference_chains: int
    reference_draws: int
    reference_thin: int
    reference_warmup: int
    estimator_steps: int
    estimator_learning_rate: float


BIAS_SCALES = {
    "smoke": BiasScale(replicas=16, time=400.0, learning_rates=(0.4, 0.2, 0.1), records=200, reference_chains=16,
                       reference_draws=400, reference_thin=2, reference_warmup=300, estimator_steps=4_000,
                       estimator_learning_rate=0.05),
    "paper": BiasScale(replicas=64, time=8_000.0, learning_rates=(0.4, 0.2, 0.1, 0.05), records=1_000,
                       reference_chains=32, reference_draws=4_000, reference_thin=5, reference_warmup=2_000,
                       estimator_steps=80_000, estimator_learning_rate=0.05),
}

# The smooth statistics of the stationary law whose means are compared, with their units.
STATISTICS = {
    "log_likelihood": ("mean log-likelihood of the data", _NATS),
    "active_count": ("active connections |M|", _ONE),
    "weight_l1": ("sum of |w| over the connections", "weight units"),
    "visible_bias": ("visible bias, mean over units", "weight units"),
}


def _traces(masks, weights, visible_bias, log_likelihood) -> dict:
    """The :data:`STATISTICS` per record, each (replica, record)."""
    return {"log_likelihood": np.asarray(log_likelihood, dtype=np.float64),
            "active_count": np.asarray(masks).sum(axis=(2, 3)).astype(np.float64),
            "weight_l1": np.abs(np.asarray(weights, dtype=np.float64)).sum(axis=(2, 3)),
            "visible_bias": np.asarray(visible_bias, dtype=np.float64).mean(axis=2)}


def _run_traces(ds: xr.Dataset) -> dict:
    """Traces of a replica run after burn-in (the first tenth of the records)."""
    burn = ds.sizes["record"] // 10
    part = ds.isel(record=slice(burn, None))
    return _traces(part["mask"].values, part["weights"].values, part["visible_bias"].values,
                   part["log_likelihood"].values)


def replica_mean(trace) -> tuple[float, float]:
    """Mean of a (replica, record) trace and its standard error with the replicas as independent chains.

    The replicas' time averages are independent and identically distributed (independent seeds,
    one start law), so their spread over ``sqrt(n_replicas)`` is the standard error whatever the
    autocorrelation along a replica; it needs no estimate of ``tau``. Returns ``(mean, se)``.
    """
    x = np.asarray(trace, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"trace must have shape (replica, record) with at least 2 replicas, got {x.shape}")
    per_replica = x.mean(axis=1)
    return float(per_replica.mean()), float(per_replica.std(ddof=1) / np.sqrt(per_replica.size))


def _reference_mean(trace) -> tuple[float, float]:
    """Mean of reference-sampler draws with the standard error from their ESS (0 for a constant trace)."""
    x = np.asarray(trace, dtype=np.float64)
    if x.min() == x.max():
        return float(x.mean()), 0.0
    return float(x.mean()), float(x.std() / np.sqrt(effective_sample_size(x)))


def _statistic_coords(names) -> dict:
    return {"statistic": ("statistic", names, {"long_name": "statistic of the stationary law", "units": _ONE}),
            "statistic_long_name": ("statistic", [STATISTICS[k][0] for k in names],
                                    {"long_name": "what the statistic is", "units": _ONE}),
            "statistic_units": ("statistic", [STATISTICS[k][1] for k in names],
                                {"long_name": "units of the statistic's values", "units": _ONE})}


def _halving_setup(scale, seed):
    """What both learning-rate halving experiments start from: the scale, the checked seed, the
    4 x 2 setup, its two rules, the learning rates and the steps giving each the same eta x steps."""
    sc = _bias_scale(scale)
    seed = check_seed(seed)
    setup = experiment_setup(seed)
    rules = {"deep-r": setup["deep_r"], "soft-deep-r": setup["soft_deep_r"]}
    lrs = np.asarray(sc.learning_rates, dtype=np.float64)
    steps = np.array([int(round(sc.time / lr)) for lr in lrs], dtype=np.int64)
    return sc, seed, setup, rules, lrs, steps


def discretisation_bias(scale: Literal["smoke", "paper"] | BiasScale = "smoke", seed: int = 0,
                        progress: bool | None = None) -> xr.Dataset:
    """The discretisation bias of DEEP R and soft-DEEP R (exact gradients) as the learning rate halves.

    Every run has the same length in time ``eta * steps`` (``scale.time``), the model of
    :func:`experiment_setup`; the means of :data:`STATISTICS` over the replicas (after burn-in)
    are compared with the reference posterior's (:func:`analysis.posterior.sample_posterior`):
    the deviation at each ``eta`` and its ratio per halving
    (:func:`analysis.stationary.deviation_ratios`). An Euler-Maruyama step of a Langevin
    diffusion has an ``O(eta)`` bias of smooth stationary means (ratio 2).

    Parameters
    ----------
    scale : "smoke", "paper" or BiasScale
    seed : int
    progress : bool or None

    Returns
    -------
    xarray.Dataset
        Dims ``rule`` (deep-r, soft-deep-r), ``learning_rate``, ``statistic`` (coords
        ``statistic_long_name``, ``statistic_units``: the units of every value of that
        statistic), ``halving``: ``estimate``, ``estimate_standard_error``, ``reference``,
        ``reference_standard_error``, ``deviation`` with ``deviation_lower`` / ``_upper`` and
        ``deviation_excludes_zero``, ``ratio`` (deviation at ``eta`` over the one at ``eta/2``;
        coord ``halving`` is the larger ``eta``) with ``ratio_lower`` / ``_upper`` and
        ``ratio_standard_error``; per rule the reference sampler's ``reference_rhat_*`` and
        ``reference_ess_log_likelihood``. Coordinate ``steps`` (per learning rate).
    """
    sc, seed, setup, rules, lrs, steps = _halving_setup(scale, seed)
    names = list(STATISTICS)
    est = np.empty((len(rules), lrs.size, len(names)))
    est_se = np.empty_like(est)
    ref = np.empty((len(rules), len(names)))
    ref_se = np.empty_like(ref)
    quality = {k: [] for k in ("reference_rhat_inclusion_max", "reference_rhat_weight_max",
                               "reference_rhat_log_likelihood")}
    ess_ll = []
    with progress_bar(len(rules) * (1 + lrs.size), "discretisation bias", enabled=progress) as bar:
        for a, (name, rule) in enumerate(rules.items()):
            draws = _reference(setup, name, sc, seed, k=setup["k"] if name == "deep-r" else None)
            for key, value in _reference_quality(draws).items():
                quality[key].append(value)
            ess_ll.append(float(draws.diagnostics["ess_log_likelihood"]))
            traces = _traces(draws.masks, draws.weights, draws.visible_bias, draws.log_likelihood)
            for c, stat in enumerate(names):
                ref[a, c], ref_se[a, c] = _reference_mean(traces[stat])
            bar.update(1)
            for b, (lr, n) in enumerate(zip(lrs, steps)):
                run = fixed_sign_replicas(rule, setup["signs"], sc.replicas, setup["data"], int(n),
                                          max(int(n) // sc.records, 1), learning_rate=float(lr), estimator=Exact(),
                                          seed=stream_seed(seed, "discretisation", name, str(b)))
                traces = _run_traces(run)
                for c, stat in enumerate(names):
                    est[a, b, c], est_se[a, b, c] = replica_mean(traces[stat])
                bar.update(1)
    ds = _bias_dataset(est, est_se, ref, ref_se, list(rules), lrs, steps, names,
                       seed=stream_seed(seed, "discretisation", "ratios"),
                       reference_name="reference posterior mean",
                       reference_error="standard error of the reference mean (from its ESS)")
    ds = ds.assign({
        **{key: ("rule", np.array(values), {"long_name": f"reference sampler: {key[10:].replace('_', ' ')}",
                                            "units": _ONE}) for key, values in quality.items()},
        "reference_ess_log_likelihood": ("rule", np.array(ess_ll), {"long_name": "reference sampler: effective "
                                                                                 "sample size of the likelihood",
                                                                    "units": _ONE}),
    })
    ds.attrs = provenance(title="discretisation bias of the stationary means as the learning rate halves (equal "
                                "time eta * steps, exact gradients, 4 x 2 bars-and-stripes model)",
                          seed=seed, scale=scale if isinstance(scale, str) else "custom",
                          scale_settings=json.dumps(asdict(sc)), time=sc.time, replicas=sc.replicas,
                          burn_in="first tenth of the records", standard_errors="run: spread of the replicas' time "
                          "averages / sqrt(replicas); reference: std / sqrt(ESS)", **_model_attrs(setup))
    return ds


def prior_discretisation_bias(scale: Literal["smoke", "paper"] | BiasScale = "smoke", seed: int = 0,
                              progress: bool | None = None) -> xr.Dataset:
    """:func:`discretisation_bias` in the prior-only limit, where the stationary means are exact.

    With the likelihood off (:func:`dilution.deep_r.prior_dynamics`, one chain per replica, the
    rules of :func:`experiment_setup`) the stationary law is known in closed form (digest B.7):
    DEEP R keeps ``|M| = K`` with active ``theta`` i.i.d. ``Exp(alpha / T)``, so ``E sum |w| =
    K T / alpha``; soft-DEEP R's pairs are independent, active with probability ``p``
    (:func:`dilution.deep_r.inclusion_probability`), so ``E|M| = D p`` and ``E sum |w| = D p T /
    alpha``. The deviations are then the rules' own discretisation bias, with no reference error
    and no likelihood. Statistics ``active_count`` and ``weight_l1``; same dims as
    :func:`discretisation_bias` (``reference_standard_error`` is 0).
    """
    sc, seed, setup, rules, lrs, steps = _halving_setup(scale, seed)
    names = ["active_count", "weight_l1"]
    d = _SHAPE[0] * _SHAPE[1]
    scale_theta = setup["temperature"] / setup["alpha"]
    p = inclusion_probability(setup["alpha"], setup["temperature"], setup["theta_min"])
    ref = np.array([[setup["k"], setup["k"] * scale_theta], [d * p, d * p * scale_theta]])
    est = np.empty((len(rules), lrs.size, len(names)))
    est_se = np.empty_like(est)
    with progress_bar(len(rules) * lrs.size, "prior-only discretisation bias", enabled=progress) as bar:
        for a, (name, rule) in enumerate(rules.items()):
            for b, (lr, n) in enumerate(zip(lrs, steps)):
                count = np.empty((sc.replicas, 1))
                l1 = np.empty((sc.replicas, 1))
                for r in range(sc.replicas):
                    run = prior_dynamics(rule, _SHAPE, int(n), eta=float(lr), record_every=max(int(n) // sc.records, 1),
                                         seed=stream_seed(seed, "prior-discretisation", name, str(b), str(r)))
                    theta = run.theta[run.theta.shape[0] // 10:]
                    active = theta >= 0
                    count[r] = active.sum(axis=(1, 2)).mean()
                    l1[r] = np.where(active, theta, 0.0).sum(axis=(1, 2)).mean()
                est[a, b, 0], est_se[a, b, 0] = replica_mean(count)
                est[a, b, 1], est_se[a, b, 1] = replica_mean(l1)
                bar.update(1)
    ds = _bias_dataset(est, est_se, ref, np.zeros_like(ref), list(rules), lrs, steps, names,
                       seed=stream_seed(seed, "prior-discretisation", "ratios"),
                       reference_name="exact prior-only stationary mean (digest B.7)",
                       reference_error="standard error of the reference (0: exact)")
    ds.attrs = provenance(title="discretisation bias of the prior-only stationary means as the learning rate halves "
                                "(equal time eta * steps; exact references)", seed=seed,
                          scale=scale if isinstance(scale, str) else "custom", scale_settings=json.dumps(asdict(sc)),
                          time=sc.time, replicas=sc.replicas, burn_in="first tenth of the records",
                          standard_errors="spread of the replicas' time averages / sqrt(replicas)",
                          **_model_attrs(setup))
    return ds


def copies_setup() -> dict:
    """The model of :func:`estimator_bias`, where CD-1 moves the masks (issue 12, item 3).

    Four visible units, two hidden: ``v0 = v1 = v2`` (three copies of one fair bit) and ``v3``
    an independent fair bit, every combination twice (16 rows). ``T = 1/128`` (the likelihood of
    128 such rows per unit of mean log-likelihood), ``alpha = 2 T``. The signs make hidden 0
    positive and hidden 1 negative on the copies (both can explain them: flipping a hidden unit
    flips its weights' signs) and positive on ``v3``, so the hidden units are not exchangeable
    and every pair's inclusion probability is a well-defined, mixing quantity. Both hidden units
    wire the copies almost surely; the question is whether they also wire ``v3``, which the
    data do not need. Settings as :func:`experiment_setup`, except DEEP R's budget ``k = 7``:
    one pair dormant, in the posterior almost always one of v3's, so the reference's swap moves
    mix (inclusion R-hat 1.01 at 16 x 1000 draws, swap acceptance 6%); at ``k = 4`` they do not
    (R-hat 1.9), and at ``k = 6`` both v3 pairs are dormant with probability ~1.
    """
    data = np.array([[x, x, x, y] for x in (0, 1) for y in (0, 1)] * 2, dtype=np.float64)
    temperature = 1.0 / 128
    alpha = 2.0 * temperature
    signs = np.array([[1, -1], [1, -1], [1, -1], [1, 1]], dtype=np.int8)
    soft = SoftDeepR(alpha=alpha, temperature=temperature, p0=0.5, bias_l2=_BIAS_L2)
    deep = DeepR(k=_COPIES_K, alpha=alpha, temperature=temperature, bias_l2=_BIAS_L2)
    return dict(data=data, temperature=temperature, alpha=alpha, theta_min=soft.floor_value, bias_l2=_BIAS_L2,
                signs=signs, deep_r=deep, soft_deep_r=soft, k=_COPIES_K)


def estimator_bias(scale: Literal["smoke", "paper"] | BiasScale = "smoke", seed: int = 0,
                   rule: Literal["soft-deep-r", "deep-r"] = "soft-deep-r", progress: bool | None = None) -> xr.Dataset:
    """Inclusion probabilities under exact, CD-1, CD-10 and PCD-1 gradients against the reference posterior.

    The model of :func:`copies_setup`; ``scale.replicas`` replicas of ``scale.estimator_steps``
    updates at ``scale.estimator_learning_rate`` per estimator (``ESTIMATORS``). Each pair's
    inclusion probability is the mean over replicas of its time average after burn-in, with the
    replicas as independent chains (:func:`replica_mean`); the reference's error is from its
    ESS; the deviation's interval adds both in quadrature (normal, 95%). The exact-gradient row
    carries the discretisation bias at this learning rate: the estimators' rows are read
    against it as well as against the reference.

    Returns
    -------
    xarray.Dataset
        Dims ``estimator``, ``visible``, ``hidden``: ``inclusion``, ``inclusion_standard_error``,
        ``reference``, ``reference_standard_error``, ``difference`` with ``difference_lower`` /
        ``_upper`` and ``z_score``, ``difference_from_exact`` with its ``_lower`` / ``_upper``
        (against the exact-gradient replicas). Per estimator: ``max_abs_z``,
        ``n_pairs_excluding_zero``, ``chi2`` (sum of ``z^2`` over the 8 pairs),
        ``log_likelihood_difference`` with ``_lower`` / ``_upper``. The reference sampler's
        ``reference_rhat_*`` and ``reference_ess_inclusion_min``.
    """
    sc = _bias_scale(scale)
    seed = check_seed(seed)
    if rule not in ("soft-deep-r", "deep-r"):
        raise ValueError(f"rule must be 'soft-deep-r' or 'deep-r', got {rule!r}")
    setup = copies_setup()
    k = setup["k"] if rule == "deep-r" else None
    the_rule = setup["deep_r"] if rule == "deep-r" else setup["soft_deep_r"]
    n = sc.estimator_steps
    with progress_bar(1 + len(ESTIMATORS), f"estimator bias ({rule})", enabled=progress) as bar:
        draws = _reference(setup, rule, sc, seed, k=k)
        bar.update(1)
        runs = {}
        for name, est in ESTIMATORS.items():
            runs[name] = fixed_sign_replicas(the_rule, setup["signs"], sc.replicas, setup["data"], n,
                                             max(n // sc.records, 1), learning_rate=sc.estimator_learning_rate,
                                             estimator=est, seed=stream_seed(seed, "estimator-bias", rule, name))
            bar.update(1)
    v, h = setup["signs"].shape
    ref_masks = draws.masks.astype(np.float64)
    ref = np.empty((v, h))
    ref_se = np.empty((v, h))
    for i in range(v):
        for j in range(h):
            ref[i, j], ref_se[i, j] = _reference_mean(ref_masks[:, :, i, j])
    ll_ref, ll_ref_se = _reference_mean(draws.log_likelihood)
    z = 1.959963984540054
    inc = np.empty((len(ESTIMATORS), v, h))
    inc_se = np.empty_like(inc)
    ll = np.empty((len(ESTIMATORS), 2))
    for e, name in enumerate(ESTIMATORS):
        burn = runs[name].sizes["record"] // 10
        masks = runs[name]["mask"].values[:, burn:].astype(np.float64)
        for i in range(v):
            for j in range(h):
                inc[e, i, j], inc_se[e, i, j] = replica_mean(masks[:, :, i, j])
        ll[e] = replica_mean(runs[name]["log_likelihood"].values[:, burn:])
    diff = inc - ref
    se = np.sqrt(inc_se**2 + ref_se**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(se > 0, diff / se, 0.0)
    exact = list(ESTIMATORS).index("exact")
    d_exact = inc - inc[exact]
    se_exact = np.sqrt(inc_se**2 + inc_se[exact] ** 2)
    excludes = (np.abs(diff) > z * se)
    ll_diff = ll[:, 0] - ll_ref
    ll_se = np.hypot(ll[:, 1], ll_ref_se)
    cube = ("estimator", "visible", "hidden")
    pair = ("visible", "hidden")
    quality = _reference_quality(draws)
    ds = xr.Dataset({
        "inclusion": (cube, inc, {"long_name": "marginal inclusion probability (replica mean after burn-in)",
                                  "units": _ONE}),
        "inclusion_standard_error": (cube, inc_se, {"long_name": "standard error of the inclusion probability "
                                                                 "(spread of the replicas' time averages)",
                                                    "units": _ONE}),
        "reference": (pair, ref, {"long_name": "reference posterior inclusion probability", "units": _ONE}),
        "reference_standard_error": (pair, ref_se, {"long_name": "standard error of the reference (from its ESS)",
                                                    "units": _ONE}),
        "difference": (cube, diff, {"long_name": "inclusion probability minus the reference", "units": _ONE}),
        "difference_lower": (cube, diff - z * se, {"long_name": "lower end of the 95% interval of the difference",
                                                   "units": _ONE}),
        "difference_upper": (cube, diff + z * se, {"long_name": "upper end of the 95% interval of the difference",
                                                   "units": _ONE}),
        "z_score": (cube, zs, {"long_name": "difference over its standard error", "units": _ONE}),
        "difference_from_exact": (cube, d_exact, {"long_name": "inclusion probability minus the exact-gradient "
                                                               "replicas'", "units": _ONE}),
        "difference_from_exact_lower": (cube, d_exact - z * se_exact,
                                        {"long_name": "lower end of the 95% interval of the difference from exact",
                                         "units": _ONE}),
        "difference_from_exact_upper": (cube, d_exact + z * se_exact,
                                        {"long_name": "upper end of the 95% interval of the difference from exact",
                                         "units": _ONE}),
        "max_abs_z": ("estimator", np.abs(zs).max(axis=(1, 2)), {"long_name": "largest |z| over the pairs",
                                                                 "units": _ONE}),
        "n_pairs_excluding_zero": ("estimator", excludes.sum(axis=(1, 2)).astype(np.int64),
                                   {"long_name": "pairs whose 95% interval of the difference excludes 0",
                                    "units": _ONE}),
        "chi2": ("estimator", (zs**2).sum(axis=(1, 2)),
                 {"long_name": "sum of squared z-scores over the pairs (if unbiased about chi2 with one dof per "
                               "pair that varies, fewer for DEEP R, whose budget ties the pairs)", "units": _ONE}),
        "log_likelihood_difference": ("estimator", ll_diff, {"long_name": "E[mean log-likelihood] minus the "
                                                                          "reference's", "units": _NATS}),
        "log_likelihood_difference_lower": ("estimator", ll_diff - z * ll_se,
                                            {"long_name": "lower end of the 95% interval", "units": _NATS}),
        "log_likelihood_difference_upper": ("estimator", ll_diff + z * ll_se,
                                            {"long_name": "upper end of the 95% interval", "units": _NATS}),
        **{key: ((), value, {"long_name": f"reference sampler: {key[10:].replace('_', ' ')}", "units": _ONE})
           for key, value in quality.items()},
        "reference_ess_inclusion_min": ((), float(draws.diagnostics["ess_inclusion"].min()),
                                        {"long_name": "reference sampler: smallest ESS of an inclusion indicator",
                                         "units": _ONE}),
    }, coords={"estimator": ("estimator", list(ESTIMATORS), {"long_name": "gradient estimator", "units": _ONE}),
               "visible": ("visible", np.arange(v), {"long_name": "visible unit", "units": _ONE}),
               "hidden": ("hidden", np.arange(h), {"long_name": "hidden unit", "units": _ONE})})
    ds.attrs = provenance(title=f"{rule}: inclusion probabilities per gradient estimator against the reference "
                                "posterior on three copies and an independent bit (T = 1/128)",
                          seed=seed, rule=rule, scale=scale if isinstance(scale, str) else "custom",
                          scale_settings=json.dumps(asdict(sc)), steps=n, learning_rate=sc.estimator_learning_rate,
                          replicas=sc.replicas, burn_in="first tenth of the records",
                          standard_errors="runs: spread of the replicas' time averages / sqrt(replicas); reference: "
                                          "std / sqrt(ESS); 95% normal intervals, errors in quadrature",
                          **_model_attrs(setup))
    return ds


def run_bias_experiments(scale: Literal["smoke", "paper"] = "smoke", out: str | Path = ".", seed: int = 0,
                         progress: bool | None = None) -> list[Path]:
    """Write ``stationary-discretisation.nc`` (:func:`discretisation_bias`),
    ``stationary-discretisation-prior.nc`` (:func:`prior_discretisation_bias`),
    ``stationary-estimator-bias.nc`` and ``stationary-estimator-bias-deep-r.nc``
    (:func:`estimator_bias`, soft-DEEP R and DEEP R) into ``out``."""
    sc = _bias_scale(scale)
    out = Path(out)
    if not out.is_dir():
        raise ValueError(f"out must be an existing folder, got {str(out)!r}")
    paths = [save(discretisation_bias(sc, seed, progress), out / "stationary-discretisation.nc"),
             save(prior_discretisation_bias(sc, seed, progress), out / "stationary-discretisation-prior.nc")]
    paths.append(save(estimator_bias(sc, seed, "soft-deep-r", progress), out / "stationary-estimator-bias.nc"))
    paths.append(save(estimator_bias(sc, seed, "deep-r", progress), out / "stationary-estimator-bias-deep-r.nc"))
    return paths


def _bias_dataset(est, est_se, ref, ref_se, rules, lrs, steps, names, *, seed, reference_name, reference_error):
    """Estimates (rule, learning_rate, statistic) against references (rule, statistic), labelled."""
    dev = deviation_ratios(np.moveaxis(est, 1, -1), np.moveaxis(est_se, 1, -1), ref, ref_se, seed=seed)
    cube = ("rule", "learning_rate", "statistic")
    halves = ("rule", "halving", "statistic")
    see = "see statistic_units"

    def lr_last(var):
        return np.moveaxis(dev[var].values, -1, 1)

    lower, upper = lr_last("deviation_lower"), lr_last("deviation_upper")
    return xr.Dataset({
        "estimate": (cube, est, {"long_name": "stationary mean over the replicas (after burn-in)", "units": see}),
        "estimate_standard_error": (cube, est_se, {"long_name": "standard error of the mean (spread of the replicas' "
                                                               "time averages)", "units": see}),
        "reference": (("rule", "statistic"), ref, {"long_name": reference_name, "units": see}),
        "reference_standard_error": (("rule", "statistic"), ref_se, {"long_name": reference_error, "units": see}),
        "deviation": (cube, lr_last("deviation"), {"long_name": "stationary mean minus the reference", "units": see}),
        "deviation_lower": (cube, lower, {"long_name": "lower end of the 95% interval of the deviation",
                                          "units": see}),
        "deviation_upper": (cube, upper, {"long_name": "upper end of the 95% interval of the deviation",
                                          "units": see}),
        "deviation_excludes_zero": (cube, ((lower > 0) | (upper < 0)).astype(np.int8),
                                    {"long_name": "the deviation's 95% interval excludes 0 (1) or not (0)",
                                     "units": _ONE}),
        "ratio": (halves, lr_last("ratio"), {"long_name": "deviation at eta over the deviation at eta/2 (2 for an "
                                                          "O(eta) bias)", "units": _ONE}),
        "ratio_lower": (halves, lr_last("ratio_lower"), {"long_name": "lower end of the 95% interval of the ratio",
                                                         "units": _ONE}),
        "ratio_upper": (halves, lr_last("ratio_upper"), {"long_name": "upper end of the 95% interval of the ratio",
                                                         "units": _ONE}),
        "ratio_standard_error": (halves, lr_last("ratio_standard_error"),
                                 {"long_name": "delta-method standard error of the ratio", "units": _ONE}),
    }, coords={"rule": ("rule", list(rules), {"long_name": "rewiring rule", "units": _ONE}),
               "learning_rate": ("learning_rate", lrs, {"long_name": "learning rate eta", "units": _ONE}),
               "steps": ("learning_rate", steps, {"long_name": "updates per replica", "units": "updates"}),
               "halving": ("halving", lrs[:-1], {"long_name": "the larger learning rate of the halving",
                                                 "units": _ONE}),
               **_statistic_coords(names)})


def _bias_scale(scale) -> BiasScale:
    if isinstance(scale, BiasScale):
        return scale
    if scale not in BIAS_SCALES:
        raise ValueError(f"scale must be one of {sorted(BIAS_SCALES)} or a BiasScale, got {scale!r}")
    return BIAS_SCALES[scale]


def _model_attrs(setup) -> dict:
    return dict(model=f"{setup['data'].shape[1]} x {setup['signs'].shape[1]} RBM, {setup['data'].shape[0]} "
                      "training rows", temperature=setup["temperature"], alpha=setup["alpha"],
                theta_min=setup["theta_min"], bias_l2=setup["bias_l2"], deep_r_k=setup["k"],
                signs=json.dumps(setup["signs"].tolist()))


def main(argv: list[str] | None = None) -> int:
    """``python -m studies.stationary --scale smoke --out DIR [--seed N] [--bias]``."""
    parser = argparse.ArgumentParser(prog="python -m studies.stationary", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke",
                        help="smoke: about a minute, small budgets; paper: the figures' budgets (default smoke)")
    parser.add_argument("--out", required=True, help="existing folder for the stationary-*.nc files")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--bias", action="store_true",
                        help="run the bias experiments (run_bias_experiments) instead of run_experiments")
    args = parser.parse_args(argv)
    run = run_bias_experiments if args.bias else run_experiments
    for path in run(args.scale, args.out, seed=args.seed, progress=None):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
