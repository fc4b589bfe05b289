"""Test-set log-likelihood of an RBM: exact (enumerable models) or with an AIS estimate of log Z.

``log p(v) = -F(v) - log Z`` with the free energy ``F`` of :func:`dilution.conditionals.free_energy`. The
free energy is exact for any size; only ``log Z`` needs enumeration (:mod:`dilution.exact`, smaller
layer <= 30 units) or annealed importance sampling (:mod:`dilution.ais`). The AIS estimate of
``log Z`` is a stochastic lower bound, so the AIS log-likelihood is a stochastic *upper* bound
on the true one; its uncertainty is the AIS standard error of ``log Z``, common to every sample.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from dilution import ais, exact
from dilution.conditionals import free_energy
from dilution.model import RBM
from dilution.rng import derive_seed
from dilution.schedules import check_schedule, classic
from dilution.validation import check_binary

__all__ = ["exact_log_likelihood", "ais_log_likelihood", "log_likelihood", "doubled_seed", "doubled_checkpoint",
           "budgets_agree", "CONVERGED_SIGMAS"]

# Two independent estimates of one log Z differ by more than 3 combined standard errors with
# probability 0.3 % (normal errors): a larger shift when the betas double is the schedule's bias.
CONVERGED_SIGMAS = 3.0


def _check_rbm(rbm) -> None:
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")


def _free_energy(rbm: RBM, data) -> np.ndarray:
    v = check_binary("data", data, rbm.n_visible, np.float64)
    a = rbm.visible_bias.astype(np.float64)
    return free_energy(v, rbm.weights.astype(np.float64), a, rbm.hidden_bias.astype(np.float64), 1.0, np.zeros_like(a))


def log_likelihood(rbm: RBM, data, log_z: float | xr.Dataset) -> np.ndarray:
    """``log p(v) = -F(v) - log_z`` of each row of ``data``, with a ``log_z`` computed elsewhere.

    With one ``log_z`` for two data sets (training and test images), the difference of their means
    carries none of ``log_z``'s error: the generalisation gap is exact even when ``log_z`` is an
    AIS estimate.

    Parameters
    ----------
    rbm : RBM
    data : array_like, shape (n, n_visible)
        Binary samples.
    log_z : float or xarray.Dataset
        A finite number, or a :func:`dilution.ais.log_partition` result (its ``log_z`` is used).

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    _check_rbm(rbm)
    log_z = ais.check_log_z(log_z, require_std=False)
    return -_free_energy(rbm, data) - log_z


def _dataset(log_lik: np.ndarray, log_z: float, method: str, extra: dict, attrs: dict) -> xr.Dataset:
    n = log_lik.shape[0]
    ds = xr.Dataset(
        {
            "log_likelihood": ("sample", log_lik, {"long_name": "log p(v) of each test sample", "units": "nats"}),
            "mean_log_likelihood": ((), float(log_lik.mean()), {"long_name": "mean test log-likelihood", "units": "nats per sample"}),
            "std_error": ((), float(log_lik.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
                          {"long_name": "standard error of the mean over test samples (log Z held fixed)",
                           "units": "nats per sample"}),
            "log_z": ((), float(log_z), {"long_name": "log partition function used", "units": "nats"}),
            **extra,
        },
        coords={"sample": ("sample", np.arange(n), {"long_name": "test sample index", "units": "1"})},
    )
    ds.attrs.update(metric=f"test log-likelihood ({method})", is_proxy=0, n_samples=int(n), **attrs)
    return ds


def exact_log_likelihood(rbm: RBM, data, *, max_units: int = exact.MAX_UNITS) -> xr.Dataset:
    """Exact log-likelihood of held-out data (``log Z`` by enumeration of the smaller layer).

    Parameters
    ----------
    rbm : RBM
        Smaller layer of at most ``max_units`` units.
    data : array_like, shape (n, n_visible)
        Binary test samples.

    Returns
    -------
    xarray.Dataset
        ``log_likelihood`` (sample), ``mean_log_likelihood``, ``std_error``, ``log_z``.
    """
    _check_rbm(rbm)
    log_z = exact.log_partition(rbm, max_units=max_units)
    return _dataset(exact.log_likelihood(rbm, data, log_z=log_z, max_units=max_units), log_z, "exact", {}, {})


def ais_log_likelihood(rbm: RBM, data, *, n_chains: int, seed: int, betas=None, base_data=None, doubled_betas=None,
                       **ais_options) -> xr.Dataset:
    """Log-likelihood of held-out data with ``log Z`` estimated by AIS (:func:`dilution.ais.log_partition`).

    Parameters
    ----------
    rbm : RBM
    data : array_like, shape (n, n_visible)
        Binary test samples.
    n_chains : int
        AIS runs.
    seed : int
    betas : array_like, optional
        Annealing schedule; default that of :func:`dilution.ais.log_partition`.
    base_data : array_like, shape (m, n_visible), optional
        Training data for the base-rate model (never the test set, to keep the estimate honest).
    doubled_betas : array_like, or sequence of array_like, optional
        The budget-doubling check: a schedule with twice the betas of ``betas`` in the same shape
        (e.g. ``dilution.schedules.classic(2 * n)``) for a second, independent forward run (seed
        :func:`doubled_seed` of ``seed``, the same ``ais_options`` but no reverse run); or several,
        one per doubling (``classic(2 * n)``, ``classic(4 * n)``, ...; the k-th run's seed is
        ``doubled_seed(seed, k)``), a series that shows a creep one doubling can hide. A ``log Z``
        that moves when the betas double is not converged at this budget. A passed check is
        necessary, not sufficient: a forward estimate can creep by less than its noise per
        doubling and still be low. Measured with 200 chains, classic betas and resampling: NCG
        from p = 1 on a 784 x 500 MNIST RBM moved -0.02 nats from 160,000 to 320,000 betas (passed)
        and +0.58 (2 SE) to 640,000; on a 784 x 20 MNIST RBM, whose log Z enumerates, the check
        passed from 2,000 to 4,000 betas with both estimates 1.1 nats below the exact value (2.6
        and 4.0 standard errors). Score several budgets in a row to see a creep.
    **ais_options
        Passed to :func:`dilution.ais.log_partition` (e.g. ``reverse=False``, ``resample=0.5``,
        ``checkpoint="ais.npz"``). With a ``checkpoint``, each doubling run keeps its own beside it
        (:func:`doubled_checkpoint`).

    Returns
    -------
    xarray.Dataset
        As :func:`exact_log_likelihood`, plus ``log_z_std`` (AIS standard error of ``log Z``, which
        shifts every sample's value together) and, when AIS ran in reverse too,
        ``mean_log_likelihood_lower`` (computed with the reverse-AIS upper bound on ``log Z``) and
        :func:`dilution.ais.log_partition`'s ``log_z_upper``, ``log_z_upper_std`` and
        ``ess_reverse``. With ``doubled_betas``:
        ``log_z_doubled`` and ``log_z_doubled_std`` (of the largest budget, the least biased
        estimate), ``mean_log_likelihood_doubled`` (the mean with it), ``log_z_shift`` (its
        estimate minus the one before it: ``log_z_doubled - log_z`` with one doubling) and
        ``log_z_converged``, 1 when no two budgets of the series (``betas`` and each doubling) give
        estimates more than ``CONVERGED_SIGMAS`` combined standard errors apart (``|a - b| <=
        CONVERGED_SIGMAS * sqrt(se_a^2 + se_b^2)``), else 0 (for independent normal errors each
        pair alarms falsely with probability 0.27 %: at most 1.6 % over the 6 pairs of three
        doublings); and the series itself,
        ``log_z_series`` and ``log_z_series_std`` on dim ``n_betas`` (``betas`` first). Attrs
        ``ais_n_chains``, ``ais_seed``, ``ais_n_betas``, ``ais_resample``, ``ais_n_groups`` (0 for
        plain AIS) and with the check ``ais_n_betas_doubled``, ``ais_seed_doubled`` (of the largest
        budget).
    """
    _check_rbm(rbm)
    f = _free_energy(rbm, data)
    doublings = None if doubled_betas is None else _schedules(doubled_betas, betas)  # checked before any run
    est = ais.log_partition(rbm, n_chains=n_chains, betas=betas, data=base_data, seed=seed, data_name="base_data",
                            **ais_options)
    log_z = float(est["log_z"])
    log_z_std = float(est["log_z_std"])
    nats = "nats"
    extra = {"log_z_std": ((), log_z_std, {"long_name": "AIS standard error of log Z", "units": nats})}
    if "log_z_upper" in est:
        extra["mean_log_likelihood_lower"] = (
            (), float(np.mean(-f) - float(est["log_z_upper"])),
            {"long_name": "mean test log-likelihood with the reverse-AIS log Z (the other side of the sandwich)", "units": "nats per sample"},
        )
        for name in ("log_z_upper", "log_z_upper_std", "ess_reverse"):
            extra[name] = ((), float(est[name]), dict(est[name].attrs))
    attrs = {"ais_n_chains": int(n_chains), "ais_seed": int(seed), "ais_n_betas": int(est.attrs["n_betas"]),
             "ais_resample": float(est.attrs["resample"]), "ais_n_groups": int(est.attrs["n_groups"])}
    series = None
    if doublings is not None:
        estimates = [(log_z, log_z_std, int(est.attrs["n_betas"]))]
        for k, doubled_schedule in enumerate(doublings, start=1):
            options = {**ais_options, "reverse": False}
            options.pop("reverse_init", None)  # the doubling runs have no reverse run to start
            if options.get("checkpoint") is not None:
                options["checkpoint"] = doubled_checkpoint(options["checkpoint"], k)
            doubled = ais.log_partition(rbm, n_chains=n_chains, betas=doubled_schedule, data=base_data,
                                        seed=doubled_seed(seed, k), data_name="base_data", **options)
            estimates.append((float(doubled["log_z"]), float(doubled["log_z_std"]), int(doubled.attrs["n_betas"])))
        values, errors, sizes = (np.array(column) for column in zip(*estimates))
        steady = budgets_agree(values, errors)
        what = "no two budgets of the series differ" if len(values) > 2 else "the doubling moved log Z"
        extra.update(
            log_z_doubled=((), float(values[-1]), {
                "long_name": "forward AIS estimate of log Z with the most betas (an independent run)", "units": nats}),
            log_z_doubled_std=((), float(errors[-1]), {"long_name": "AIS standard error of log_z_doubled",
                                                        "units": nats}),
            mean_log_likelihood_doubled=((), float(np.mean(-f) - values[-1]), {
                "long_name": "mean test log-likelihood with log_z_doubled (the most betas: the least biased log Z)",
                "units": "nats per sample"}),
            log_z_shift=((), float(values[-1] - values[-2]), {
                "long_name": "change of log Z at the last doubling of the betas (log_z_doubled - the estimate before)",
                "units": nats}),
            log_z_converged=((), int(steady), {
                "long_name": f"1 if {what} by more than {CONVERGED_SIGMAS:g} combined standard errors "
                             "(log Z converged at this AIS budget), else 0", "units": "1"}),
            log_z_series=(("n_betas",), values, {"long_name": "forward AIS estimate of log Z at each budget",
                                                 "units": nats}),
            log_z_series_std=(("n_betas",), errors, {"long_name": "AIS standard error of log_z_series",
                                                     "units": nats}),
        )
        series = sizes
        attrs.update(ais_n_betas_doubled=int(sizes[-1]), ais_seed_doubled=doubled_seed(seed, len(doublings)))
    ds = _dataset(-f - log_z, log_z, "AIS", extra, attrs)
    if series is not None:
        ds = ds.assign_coords(n_betas=("n_betas", series, {"long_name": "AIS betas of the run", "units": "1"}))
    return ds


def budgets_agree(log_z, log_z_se, sigmas: float = CONVERGED_SIGMAS) -> bool:
    """True when no two estimates of one ``log Z`` (AIS at different budgets) are more than ``sigmas``
    combined standard errors apart: ``|a - b| <= sigmas * sqrt(se_a^2 + se_b^2)`` for every pair.

    Every pair, not only consecutive budgets and the two ends: a noisy first estimate hides a creep
    from the ends' test (NCG from p = 1 on a 784 x 500 MNIST RBM: 160k against 1.28M betas passes
    it, 320k against 1.28M does not).

    Parameters
    ----------
    log_z, log_z_se : array_like, shape (n_budgets,)
        Independent estimates and their standard errors.
    """
    z, se = np.asarray(log_z, dtype=float), np.asarray(log_z_se, dtype=float)
    gap = np.abs(z[:, None] - z[None, :])
    return bool(np.all(gap <= sigmas * np.hypot(se[:, None], se[None, :])))


def _schedules(doubled_betas, betas) -> list[np.ndarray]:
    """``doubled_betas`` as a list of checked schedules: one schedule (numbers), or a sequence of them,
    each with more betas than the budget before it (``betas``, default :func:`dilution.schedules.classic`)."""
    expected = "doubled_betas must be a schedule or a non-empty sequence of schedules"
    try:
        n = len(doubled_betas)  # a 0-d array has __len__ but raises TypeError
    except TypeError:
        n = None
    if n is None or isinstance(doubled_betas, (str, bytes)):
        raise TypeError(f"{expected}, got {doubled_betas!r}")
    if n == 0:
        raise ValueError(f"{expected}, got an empty one")
    single = np.ndim(doubled_betas[0]) == 0
    raw = [doubled_betas] if single else list(doubled_betas)
    previous, size = "betas", (classic() if betas is None else check_schedule(betas)).size
    checked = []
    for i, schedule in enumerate(raw):
        name = "doubled_betas" if single else f"doubled_betas[{i}]"
        try:
            schedule = check_schedule(schedule)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} is not a valid AIS schedule: {err}") from None
        if schedule.size <= size:
            raise ValueError(f"{name} must have more betas than {previous} ({size}), got {schedule.size}")
        checked.append(schedule)
        previous, size = name, schedule.size
    return checked


def doubled_checkpoint(path: str | os.PathLike, k: int = 1) -> Path:
    """The checkpoint file of the ``k``-th budget-doubling run of :func:`ais_log_likelihood`:
    ``<stem>-doubled<suffix>``, then ``<stem>-doubled2<suffix>``, ..."""
    path = Path(path)
    return path.with_name(f"{path.stem}-doubled{k if k > 1 else ''}{path.suffix}")


def doubled_seed(seed: int, k: int = 1) -> int:
    """The seed of the ``k``-th budget-doubling run of :func:`ais_log_likelihood`: a stream of ``seed`` of its own."""
    stream = derive_seed(seed, "ais-doubled") if k == 1 else derive_seed(seed, "ais-doubled", k)
    return int(stream.generate_state(1)[0])
