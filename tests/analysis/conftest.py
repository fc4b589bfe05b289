from __future__ import annotations

import numpy as np
import pytest


def _ar1(phi: float, n_chains: int, n_steps: int, seed: int) -> np.ndarray:
    """Stationary AR(1) chains with unit variance; integrated time tau = (1 + phi) / (1 - phi)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_chains, n_steps)) * np.sqrt(1 - phi**2)
    x = np.empty((n_chains, n_steps))
    x[:, 0] = rng.standard_normal(n_chains)
    for t in range(1, n_steps):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    return x


@pytest.fixture(scope="session")
def ar1():
    """The AR(1) generator, shared by the autocorrelation and convergence tests."""
    return _ar1
