"""Adaptive refinement of the fraction axis: more fractions where the transition is (``[refine]``).

After a pass over the grid, :func:`next_fractions` locates the transition of the test
log-likelihood against the pruning fraction on every ``(protocol, pruning_time, n_hidden)``
curve (:func:`analysis.transition.locate_transition`: midpoint crossing, bootstrap over seeds,
bootstrap seed 0). The interval on the location is widened to the grid cell that contains the
location (a crossing interpolated between two fractions is not known better than their spacing,
whatever the seed-to-seed spread); where it is wider than ``refine.target_width``, the midpoints
of the grid intervals it overlaps are candidates, nearest to the located
transition first; a round adds them (within the ``max_points`` budget) and computes the new
points; rounds stop when every interval is narrow enough, the budget is spent or no interval
can be split (spacing below ``refine.resolution``).

Our own bisection rather than python-adaptive's learners: the fraction is one axis shared by
every protocol, pruning time, size and seed, so each new fraction is a batch of tasks (one per
curve and seed) that the executor runs in parallel, and the stopping criterion is the
bootstrap interval over seeds that the analysis reports, which an adaptive learner of one
noisy function does not see. Everything it decides is a function of computed results and of
fixed seeds, so the refinement is deterministic and a rerun reproduces it.

The fractions added so far are kept in ``<output>/refined.json`` (written atomically);
:func:`refined_spec` is the spec with them, which ``run``, ``status`` and ``merge`` use.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import xarray as xr

from dilution.io import atomic_write

from .spec import StudySpec

__all__ = ["refined_spec", "next_fractions", "save_refined"]

_FILE = "refined.json"


def refined_spec(spec: StudySpec) -> StudySpec:
    """``spec`` with the fractions an earlier refinement added (itself when there are none)."""
    path = Path(spec.output) / _FILE
    if spec.refine is None or not path.exists():
        return spec
    added = json.loads(path.read_text())["fractions"]
    return replace(spec, pruning_fractions=tuple(sorted(set(spec.pruning_fractions) | set(added))))


def save_refined(original: StudySpec, refined: StudySpec) -> None:
    """Record the fractions ``refined`` adds to ``original`` (see the module docstring)."""
    added = sorted(set(refined.pruning_fractions) - set(original.pruning_fractions))
    with atomic_write(Path(original.output) / _FILE) as tmp:
        tmp.write_text(json.dumps({"fractions": added}))


def next_fractions(spec: StudySpec, study: xr.Dataset, budget: int) -> tuple[float, ...]:
    """At most ``budget`` fractions to add after ``study`` (the merged Dataset of ``spec``),
    nearest to a located transition first (see the module docstring)."""
    from analysis.transition import locate_transition

    r = spec.refine
    if budget <= 0:
        return ()
    quality = study["test_log_likelihood"].where(study["finished"])
    found = locate_transition(quality, n_bootstrap=r.n_bootstrap, confidence=r.confidence, seed=0)
    grid = np.sort(study["pruning_fraction"].values)
    stacked = found.stack(curve=[d for d in found["location"].dims]) if found["location"].dims else found
    candidates: dict[float, float] = {}
    for i in range(stacked.sizes.get("curve", 1)):
        block = stacked.isel(curve=i) if "curve" in stacked.dims else stacked
        location, lower, upper = (float(block[name]) for name in ("location", "location_lower", "location_upper"))
        if not bool(block["has_transition"]) or not np.isfinite([location, lower, upper]).all():
            continue
        cell = np.searchsorted(grid, location)
        lower = min(lower, grid[max(cell - 1, 0)])
        upper = max(upper, grid[min(cell, len(grid) - 1)])
        if upper - lower <= r.target_width:
            continue
        for a, b in zip(grid[:-1], grid[1:]):
            if b > lower and a < upper and (b - a) / 2 >= r.resolution:
                middle = round((a + b) / 2, 6)
                if middle not in spec.pruning_fractions:
                    candidates[middle] = min(candidates.get(middle, np.inf), abs(middle - location))
    ranked = sorted(candidates, key=lambda f: (candidates[f], f))
    return tuple(ranked[:budget])
