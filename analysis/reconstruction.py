"""One-step reconstruction error v -> h -> v': a cheap training-monitoring proxy.

Small reconstruction error means the model maps data close to itself in one Gibbs step; it says
little about the equilibrium distribution (a model that mixes badly reconstructs well), so it is
labelled a proxy and must not be read as sample quality.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr
from scipy.special import expit

from dilution.validation import check_binary
from dilution.model import RBM
from dilution.rng import derive_seed

__all__ = ["reconstruction_error"]


def reconstruction_error(rbm: RBM, data, *, mode: Literal["mean_field", "sampled"] = "mean_field", seed: int | None = None) -> xr.Dataset:
    """Reconstruction error of each sample.

    Parameters
    ----------
    rbm : RBM
    data : array_like, shape (n, n_visible), binary
    mode : {"mean_field", "sampled"}
        ``"mean_field"``: ``h = p(h=1|v)``; ``"sampled"``: ``h ~ p(h|v)`` (needs ``seed``). In both,
        the reconstruction is ``v' = p(v=1|h)``.
    seed : int, optional

    Returns
    -------
    xarray.Dataset
        ``squared_error`` (sample): mean over pixels of ``(v - v')^2``; ``cross_entropy`` (sample):
        ``-sum_i [v_i log v'_i + (1 - v_i) log(1 - v'_i)]`` in nats; their means.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be a dilution.RBM, got {type(rbm).__name__}")
    v = check_binary("data", data, rbm.n_visible, np.float64)
    w = rbm.weights.astype(np.float64)
    h = expit(v @ w + rbm.hidden_bias)
    if mode == "sampled":
        if seed is None:
            raise ValueError("mode='sampled' needs a seed for the hidden draws")
        h = (np.random.default_rng(derive_seed(seed, "reconstruction")).random(h.shape) < h).astype(np.float64)
    elif mode != "mean_field":
        raise ValueError(f"mode must be 'mean_field' or 'sampled', got {mode!r}")
    field = h @ w.T + rbm.visible_bias
    v_rec = expit(field)
    sq = np.mean((v - v_rec) ** 2, axis=1)
    # -log sigmoid(+-x) = softplus(-+x): exact even where v' rounds to 0 or 1.
    ce = np.sum(np.logaddexp(0.0, np.where(v == 1, -field, field)), axis=1)
    ds = xr.Dataset(
        {
            "squared_error": ("sample", sq, {"long_name": "mean over pixels of (v - p(v=1|h))^2", "units": "1"}),
            "cross_entropy": ("sample", ce, {"long_name": "-log p(v|h) summed over pixels", "units": "nats"}),
            "mean_squared_error": ((), float(sq.mean()),
                                   {"long_name": "mean over samples and pixels of (v - p(v=1|h))^2", "units": "1"}),
            "mean_cross_entropy": ((), float(ce.mean()),
                                   {"long_name": "mean over samples of -log p(v|h)", "units": "nats per sample"}),
        },
        coords={"sample": ("sample", np.arange(v.shape[0]), {"long_name": "data sample index", "units": "1"})},
    )
    ds.attrs.update(
        metric=f"reconstruction error ({mode})",
        is_proxy=1,
        proxy_note="cheap training-monitoring proxy; not a measure of the equilibrium distribution",
        **({"seed": int(seed)} if mode == "sampled" else {}),
    )
    return ds
