"""Integrated autocorrelation time of scalar Markov-chain traces.

The estimator is Sokal's: the normalised autocorrelation function rho(t) is computed by FFT,
the cumulative estimate ``tau(M) = 1 + 2 sum_{t=1}^{M} rho(t)`` is read at the smallest window
``M`` with ``M >= c tau(M)`` (Sokal 1997, "Monte Carlo methods in statistical mechanics", sec. 3;
the same rule as ``emcee.autocorr.integrated_time`` with ``c = 5``). For several chains the
autocorrelation functions are averaged before the window is chosen (Goodman & Weare / emcee),
which is less noisy than averaging per-chain times; per-chain times are reported as well.

For a stationary AR(1) process ``x_t = phi x_{t-1} + noise`` the exact answer is
``tau = (1 + phi) / (1 - phi)``; the relative standard error of the estimate is about
``sqrt(2 (2 M + 1) / n_steps)`` (Madras & Sokal 1988, eq. 2.21).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["autocorrelation", "integrated_time", "as_traces"]


def as_traces(trace) -> np.ndarray:
    """(n_chains, n_steps) float64 from a 1-D trace, a 2-D array or a (chain, draw) DataArray."""
    if isinstance(trace, xr.DataArray):
        if set(trace.dims) != {"chain", "draw"} and trace.ndim == 2:
            raise ValueError(f"a 2-D DataArray trace must have dims ('chain', 'draw'), got {trace.dims}")
        if trace.ndim == 2:
            trace = trace.transpose("chain", "draw")
        trace = trace.values
    x = np.asarray(trace, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"trace must have shape (n_steps,) or (n_chains, n_steps), got {x.shape}")
    if x.shape[1] < 2:
        raise ValueError(f"trace needs at least 2 steps per chain, got {x.shape[1]}")
    if not np.all(np.isfinite(x)):
        raise ValueError("trace must be finite, found NaN or infinite values")
    return x


def autocorrelation(trace) -> np.ndarray:
    """Normalised autocorrelation function of each chain, by FFT.

    Parameters
    ----------
    trace : array_like, shape (n_steps,) or (n_chains, n_steps)

    Returns
    -------
    ndarray, shape (n_chains, n_steps)
        ``rho[c, t] = C_c(t) / C_c(0)`` with the biased (divide by ``n_steps``) autocovariance
        ``C_c(t)`` of the mean-subtracted chain. A constant chain gives ``rho = 1`` at lag 0 and
        0 elsewhere.
    """
    x = as_traces(trace)
    n = x.shape[1]
    # Zero padding to >= 2n makes the circular correlation equal the linear one.
    size = 1 << int(2 * n - 1).bit_length()
    f = np.fft.rfft(x - x.mean(axis=1, keepdims=True), n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n]
    c0 = acov[:, :1]
    rho = np.zeros_like(acov)
    ok = c0[:, 0] > 0
    rho[ok] = acov[ok] / c0[ok]
    rho[~ok, 0] = 1.0
    return rho


def _windowed(rho: np.ndarray, c: float) -> tuple[float, int]:
    taus = 2.0 * np.cumsum(rho) - 1.0
    m = np.arange(len(taus)) < c * taus
    window = int(np.argmin(m)) if not m.all() else len(taus) - 1
    return float(taus[window]), window


def integrated_time(trace, *, c: float = 5.0, tol: float = 50.0) -> xr.Dataset:
    """Integrated autocorrelation time with Sokal's automatic window.

    Parameters
    ----------
    trace : array_like, shape (n_steps,) or (n_chains, n_steps), or DataArray with dims (chain, draw)
        A scalar observable along each chain (e.g. the energy or the free energy per sweep).
    c : float
        Window constant: the window ``M`` is the smallest lag with ``M >= c tau(M)``.
    tol : float
        The estimate is flagged unreliable when ``n_steps < tol * tau`` (emcee's default 50).

    Returns
    -------
    xarray.Dataset
        ``tau`` (chain): per-chain estimate; ``window`` (chain); ``tau_mean`` and ``window_mean``:
        estimate from the chain-averaged autocorrelation function (the one to report);
        ``relative_error``: Madras-Sokal standard error ``sqrt(2 (2M+1) / (n_chains n_steps))``
        of ``tau_mean``; ``reliable``: ``n_steps >= tol * tau_mean``. Units: steps of the trace.
    """
    if not c > 0:
        raise ValueError(f"window constant c must be > 0, got {c!r}")
    x = as_traces(trace)
    n_chains, n_steps = x.shape
    rho = autocorrelation(x)
    per_chain = [_windowed(r, c) for r in rho]
    tau_mean, window_mean = _windowed(rho.mean(axis=0), c)
    rel_err = float(np.sqrt(2.0 * (2 * window_mean + 1) / (n_chains * n_steps)))
    ds = xr.Dataset(
        {
            "tau": ("chain", np.array([t for t, _ in per_chain]),
                    {"long_name": "integrated autocorrelation time of each chain", "units": "steps"}),
            "window": ("chain", np.array([w for _, w in per_chain], dtype=np.int64),
                       {"long_name": "Sokal window M of each chain", "units": "steps"}),
            "tau_mean": ((), tau_mean, {"long_name": "integrated autocorrelation time from the chain-averaged "
                                                     "autocorrelation", "units": "steps"}),
            "window_mean": ((), np.int64(window_mean), {"long_name": "Sokal window of tau_mean", "units": "steps"}),
            "relative_error": ((), rel_err, {"long_name": "Madras-Sokal relative standard error of tau_mean",
                                             "units": "1"}),
            "reliable": ((), bool(n_steps >= tol * tau_mean), {"long_name": f"n_steps >= {tol} tau_mean", "units": "1"}),
        },
        coords={"chain": ("chain", np.arange(n_chains), {"long_name": "chain index", "units": "1"})},
    )
    ds.attrs.update(
        metric="integrated autocorrelation time (Sokal automatic windowing)",
        is_proxy=0,
        window_constant=float(c),
        n_steps=int(n_steps),
        n_chains=int(n_chains),
    )
    return ds
