"""Issue 14, item 5: a default run compiles each dense Gibbs specialisation once.

A saved RBM's arrays are read-only and training's are not; numba compiles one specialisation per
writeable flag (about 10 s each on a cold cache), so gibbs_kernel hands the kernel read-only views.
"""

from __future__ import annotations

import numpy as np

from dilution import rng
from dilution.gibbs import gibbs_kernel, sample
from dilution.gibbs_blocked import gibbs_blocked
from dilution.model import RBM


def _float64_specialisations() -> list:
    return [sig for sig in gibbs_blocked.signatures if str(sig[1].dtype) == "float64"]  # numba types


def test_frozen_and_writeable_arrays_share_one_specialisation():
    g = np.random.default_rng(0)
    w = g.normal(size=(6, 4)) * 0.1
    rbm = RBM(w, np.zeros(6), np.zeros(4))  # read-only arrays
    sample(rbm, 8, 3, seed=0)
    writeable = np.array(rbm.weights)
    keys = rng.chain_keys(rng.derive_seed(0, "test-compile-count"), 8)
    gibbs_kernel(np.zeros((8, 6)), writeable, np.ascontiguousarray(writeable.T), np.zeros(6), np.zeros(4),
                 np.ones(8), np.zeros(6), keys, 0, 3, path="blocked")
    assert len(_float64_specialisations()) == 1, gibbs_blocked.signatures
