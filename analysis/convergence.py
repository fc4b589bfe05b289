"""Convergence diagnostics across chains: split R-hat and effective sample size.

Follows Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), "Rank-normalization, folding,
and localization: an improved R-hat for assessing convergence of MCMC", Bayesian Analysis 16:
each chain is split in halves (so a trend inside a chain shows up as disagreement between
halves), draws are optionally replaced by their normal scores of pooled ranks (eq. 14), and the
effective sample size uses Geyer's initial monotone sequence on the multi-chain autocorrelation
(their eq. 10; Stan's estimator).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr
from scipy import special, stats

from .autocorr import as_traces

__all__ = ["split_chains", "rank_normalize", "rhat", "effective_sample_size"]


def split_chains(chains) -> np.ndarray:
    """Split each chain into its first and second half (the middle draw of odd chains is dropped).

    Parameters
    ----------
    chains : array_like, shape (n_chains, n_draws), or DataArray with dims (chain, draw)

    Returns
    -------
    ndarray, shape (2 n_chains, n_draws // 2)
    """
    x = as_traces(chains)
    half = x.shape[1] // 2
    if half < 2:
        raise ValueError(f"split diagnostics need at least 4 draws per chain, got {x.shape[1]}")
    return np.concatenate([x[:, :half], x[:, -half:]], axis=0)


def rank_normalize(x: np.ndarray) -> np.ndarray:
    """Normal scores of the pooled ranks: ``Phi^-1((r - 3/8) / (S + 1/4))`` (Vehtari et al. eq. 14).

    Ties get their average rank. Shape is preserved.
    """
    x = np.asarray(x, dtype=np.float64)
    r = stats.rankdata(x, method="average").reshape(x.shape)
    return special.ndtri((r - 0.375) / (x.size + 0.25))


def _rhat_basic(x: np.ndarray) -> float:
    """Gelman-Rubin potential scale reduction of already-split chains ``x`` (m, n)."""
    m, n = x.shape
    w = x.var(axis=1, ddof=1).mean()
    b_over_n = x.mean(axis=1).var(ddof=1)
    if w == 0:
        return 1.0 if b_over_n == 0 else np.inf
    return float(np.sqrt(((n - 1) / n * w + b_over_n) / w))


def rhat(chains, *, method: Literal["rank", "split"] = "rank") -> xr.Dataset:
    """Potential scale reduction factor R-hat across chains.

    Parameters
    ----------
    chains : array_like, shape (n_chains, n_draws), or DataArray with dims (chain, draw)
        One scalar observable; at least 2 chains or a chain long enough to split.
    method : {"rank", "split"}
        ``"split"``: classic split R-hat ``sqrt(((n-1)/n W + B/n) / W)`` on half-chains
        (Gelman et al., BDA3 sec. 11.4). ``"rank"``: Vehtari et al. (2021): the maximum of the
        split R-hat of the rank-normalised draws (bulk) and of the rank-normalised
        ``|x - median|`` (tails).

    Returns
    -------
    xarray.Dataset
        ``rhat`` (the value to report; values below about 1.01 indicate agreement), and for
        ``"rank"`` also ``rhat_bulk`` and ``rhat_tail``.
    """
    x = split_chains(chains)
    if method == "split":
        data = {"rhat": ((), _rhat_basic(x), {"long_name": "split R-hat", "units": "1"})}
    elif method == "rank":
        bulk = _rhat_basic(rank_normalize(x))
        tail = _rhat_basic(rank_normalize(np.abs(x - np.median(x))))
        data = {
            "rhat": ((), max(bulk, tail), {"long_name": "rank-normalised split R-hat, max of bulk and tail",
                                           "units": "1"}),
            "rhat_bulk": ((), bulk, {"long_name": "rank-normalised split R-hat", "units": "1"}),
            "rhat_tail": ((), tail, {"long_name": "folded rank-normalised split R-hat", "units": "1"}),
        }
    else:
        raise ValueError(f"method must be 'rank' or 'split', got {method!r}")
    ds = xr.Dataset(data)
    ds.attrs.update(metric=f"R-hat ({method})", is_proxy=0, n_split_chains=x.shape[0], n_draws_per_split=x.shape[1])
    return ds


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each row, by FFT; shape preserved."""
    n = x.shape[1]
    size = 1 << int(2 * n - 1).bit_length()
    f = np.fft.rfft(x - x.mean(axis=1, keepdims=True), n=size, axis=1)
    return np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n


def _ess_of_split(x: np.ndarray) -> tuple[float, float]:
    """(ess, tau) of split chains ``x`` (m, n) with Geyer's initial monotone sequence."""
    m, n = x.shape
    acov = _autocovariance(x)
    mean_var = acov[:, 0].mean() * n / (n - 1)
    var_plus = mean_var * (n - 1) / n + (x.mean(axis=1).var(ddof=1) if m > 1 else 0.0)
    if var_plus == 0:
        return float(m * n), 1.0
    rho = 1.0 - (mean_var - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    # Sums of consecutive pairs are positive and decreasing for a reversible chain (Geyer 1992):
    # truncate at the first non-positive pair and force monotonicity.
    n_pairs = n // 2
    pairs = rho[: 2 * n_pairs].reshape(n_pairs, 2).sum(axis=1)
    nonpos = np.nonzero(pairs <= 0)[0]
    k = int(nonpos[0]) if nonpos.size else n_pairs
    pairs = np.minimum.accumulate(pairs[:k])
    tau = -1.0 + 2.0 * pairs.sum()
    # Antithetic chains can give tau < 1; Stan bounds it at 1 / log10(m n).
    tau = max(tau, 1.0 / np.log10(m * n))
    return float(m * n / tau), float(tau)


def effective_sample_size(chains, *, method: Literal["bulk", "basic"] = "bulk") -> xr.Dataset:
    """Effective sample size of a scalar observable over several chains.

    Parameters
    ----------
    chains : array_like, shape (n_chains, n_draws), or DataArray with dims (chain, draw)
    method : {"bulk", "basic"}
        ``"bulk"``: on split, rank-normalised chains (Vehtari et al. 2021, the recommended default);
        ``"basic"``: on split chains of the raw values (estimates the ESS of the mean).

    Returns
    -------
    xarray.Dataset
        ``ess`` (draws) and ``tau`` = total draws / ess (steps), the multi-chain integrated
        autocorrelation time with Geyer's truncation.
    """
    x = split_chains(chains)
    if method == "bulk":
        x = rank_normalize(x)
    elif method != "basic":
        raise ValueError(f"method must be 'bulk' or 'basic', got {method!r}")
    ess, tau = _ess_of_split(x)
    ds = xr.Dataset(
        {
            "ess": ((), ess, {"long_name": f"{method} effective sample size", "units": "draws"}),
            "tau": ((), tau, {"long_name": "integrated autocorrelation time (Geyer initial monotone sequence)", "units": "steps"}),
        }
    )
    ds.attrs.update(metric=f"effective sample size ({method})", is_proxy=0, n_draws_total=int(x.size))
    return ds
