"""The reference Gibbs kernel: one chain at a time, exact sigmoid, the fields as written.

Slow and obvious on purpose: the fast paths (:mod:`dilution.gibbs_blocked`,
:mod:`dilution.gibbs_sparse`) draw the same uniforms for the same (chain, sweep, unit) and are
tested against it; they may differ from it only through the rounding of the fields and the
vectorised exp.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .conditionals import sigmoid
from .rng import uniform64

__all__ = ["gibbs_reference"]


@njit(parallel=True, cache=True)
def gibbs_reference(v, weights, weights_t, visible_bias, hidden_bias, beta, base_bias, keys, counter, n_sweeps):
    """Reference kernel: one chain at a time, exact ``math.exp`` sigmoid, rows of active units summed.

    Slow and obvious; the fast paths are tested against it (``tests/dilution/test_gibbs_paths.py``).
    Same arguments and results as :func:`dilution.gibbs.gibbs_kernel`.
    """
    n_chains, n_visible = v.shape
    n_hidden = weights.shape[1]
    dt = weights.dtype
    v_out = np.empty_like(v)
    h_out = np.zeros((n_chains, n_hidden), dtype=dt)
    stride = np.uint64(n_visible + n_hidden)
    one = dt.type(1.0)
    zero = dt.type(0.0)
    for c in prange(n_chains):
        key = keys[c]
        b = beta[c]
        vc = v[c].copy()
        hc = np.zeros(n_hidden, dtype=dt)
        fh = np.empty(n_hidden, dtype=dt)
        fv = np.empty(n_visible, dtype=dt)
        vbias = np.empty(n_visible, dtype=dt)
        for i in range(n_visible):
            vbias[i] = b * visible_bias[i] + (one - b) * base_bias[i]
        for s in range(n_sweeps):
            start = counter + np.uint64(s) * stride
            fh[:] = hidden_bias
            for i in range(n_visible):
                if vc[i] != zero:
                    row = weights[i]
                    for j in range(n_hidden):
                        fh[j] += row[j]
            for j in range(n_hidden):
                p = sigmoid(b * fh[j])
                u = uniform64(key, start + np.uint64(j))
                hc[j] = one if u < p else zero
            fv[:] = vbias
            for j in range(n_hidden):
                if hc[j] != zero:
                    row = weights_t[j]
                    for i in range(n_visible):
                        fv[i] += b * row[i]
            start = start + np.uint64(n_hidden)
            for i in range(n_visible):
                p = sigmoid(fv[i])
                u = uniform64(key, start + np.uint64(i))
                vc[i] = one if u < p else zero
        v_out[c] = vc
        h_out[c] = hc
    return v_out, h_out
