"""analysis: quality metrics, mixing diagnostics and summaries built on the dilution engine.

Submodules are imported here so ``analysis.moments.moment_errors`` works after ``import analysis``;
each is light (numpy/scipy/numba) and exports its names through ``__all__``.
"""

from __future__ import annotations

from . import (
    aats,
    autocorr,
    classifier,
    convergence,
    ising,
    likelihood,
    masks,
    moments,
    pca,
    posterior,
    pseudolikelihood,
    reconstruction,
    stationary,
    transition,
)

__all__ = [
    "aats",
    "autocorr",
    "classifier",
    "convergence",
    "ising",
    "likelihood",
    "masks",
    "moments",
    "pca",
    "posterior",
    "pseudolikelihood",
    "reconstruction",
    "stationary",
    "transition",
]
