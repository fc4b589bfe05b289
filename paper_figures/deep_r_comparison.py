"""DEEP R against static sparse masks and magnitude pruning at the same connectivity.

Input: ``rewiring-mnist.nc`` (or ``rewiring-mnist-500.nc``) with ``test_log_likelihood`` of dims
(``method``, ``connectivity``, ``seed``), ``method`` e.g. ``"deep-r"``, ``"soft-deep-r"``,
``"static"``, ``"magnitude"``, ``"ncg"``. One line per method: the seed mean against the
connectivity (log axis) with Student-t error bars over seeds. The method ``"dense"`` (the same at
every connectivity: a reference level, as ``studies.rewiring.mnist_comparison`` writes it) is a
black dashed line with its band; any other method whose ``uses_connectivity`` coordinate is 0 (NCG,
``ncg-p*``: its density is an outcome, its value repeated along ``connectivity``) is a dotted line
in its colour with its band, labelled with its mean ``final_density`` when the file has it. A file
whose ``deep_r_alpha`` attr is > 0 (DEEP R run with its L1 prior) labels ``deep-r`` with that alpha,
so that it is not read as the run without the prior. The legend sits below the axes, where it covers
no point; the x ticks are the connectivities of the file. A file with several AIS budgets
(``ais_betas``) is drawn at the largest. A file with several training budgets (``epochs``) is drawn
at the budget each model's validation log-likelihood picks when the file has
``early_stopped_epochs`` (``studies.rewiring.early_stopping``; the largest budget is the overfit one
for the dense model), else at the largest. A file with ``train_log_likelihood`` (the training
images' mean log-likelihood under the same log Z) gets a second panel, the generalisation gap
train - test, drawn the same way: it tells overfitting from underfitting, which the test log-likelihood
alone does not. A file with ``epoch_gain`` marks with an open circle each point where a seed is still
rising (:func:`still_rising`: its last doubling gained more than :data:`RISING_SIGMAS` paired standard
errors at the budget drawn): the number still moves with the budget."""

from __future__ import annotations

from pathlib import Path

import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from .intervals import seed_interval
from .schema import Schema
from .schema import load as load_checked
from .style import axis_label, band, colour, new_figure

__all__ = ["COMPARISON", "QUALITY", "STOPPED_AT", "TRAIN", "DENSE", "DEEP_R", "RISING_SIGMAS", "load", "draw",
           "at_drawn_budget", "drawn_epochs", "still_rising", "generalisation_gap"]

QUALITY = "test_log_likelihood"
# A doubling of the training budget that gains more than this many paired standard errors has
# not converged (the threshold analysis.likelihood.CONVERGED_SIGMAS uses for AIS budgets).
RISING_SIGMAS = 3.0
STOPPED_AT = "early_stopped_epochs"
TRAIN = "train_log_likelihood"
DENSE = "dense"
DEEP_R = "deep-r"
COMPARISON = Schema(variables={QUALITY: ("method", "connectivity", "seed")},
                    optional={TRAIN: ("method", "connectivity", "seed")},
                    description="rewiring methods against static masks and pruning")


def load(path: Path) -> tuple[xr.Dataset]:
    return (load_checked(path, COMPARISON),)


def generalisation_gap(ds: xr.Dataset) -> xr.DataArray:
    """``train_log_likelihood - test_log_likelihood``: both use the same log Z, so the gap carries
    none of its estimation error."""
    gap = ds[TRAIN] - ds[QUALITY]
    gap.attrs = {"long_name": "train - test log-likelihood", "units": ds[QUALITY].attrs["units"]}
    return gap


def at_drawn_budget(ds: xr.Dataset) -> xr.Dataset:
    """The file at the budgets the figure draws (module docstring): the largest ``ais_betas``; along
    ``epochs`` the early-stopped budget of each model when the file has it, else the largest. Every
    variable with an ``epochs`` dim (the test and training log-likelihood, the final density, ...) is
    taken at ``early_stopped_epochs`` in the early-stopped case (the figure's caption says so), as a
    float; a model with no scored budget is NaN."""
    if "ais_betas" in ds.dims:
        ds = ds.isel(ais_betas=-1)
    if "epochs" not in ds.dims:
        return ds
    out = ds.isel(epochs=-1)
    if STOPPED_AT in ds:
        chosen = ds["epochs"] == ds[STOPPED_AT]  # one budget per model, none where nothing was scored
        for name, values in ds.data_vars.items():
            if "epochs" in values.dims and (values.dtype.kind in "biuf"):
                # exactly one budget matches, so the sum is its value; min_count=1 keeps NaN where none does
                out[name] = values.astype(float).where(chosen).sum("epochs", min_count=1)
                out[name].attrs = values.attrs  # the caption names the budget: a longer label would not fit
    return out


def drawn_epochs(ds: xr.Dataset) -> xr.DataArray:
    """The training budget each model (``method``, ``connectivity``, ``seed``) is drawn at, for a file with an
    ``epochs`` dim: ``early_stopped_epochs`` when the file has it (NaN: nothing scored), else the largest."""
    if STOPPED_AT in ds:
        return ds[STOPPED_AT]
    return xr.full_like(ds[QUALITY].isel(epochs=-1, ais_betas=-1, missing_dims="ignore"), ds["epochs"].values[-1])


def still_rising(ds: xr.Dataset) -> xr.DataArray | None:
    """Per model (``method``, ``connectivity``, ``seed``): True where the model is drawn at the largest
    training budget it was scored at and the last doubling of that budget gained more than
    :data:`RISING_SIGMAS` paired standard errors (``epoch_gain`` / ``epoch_gain_se`` at the largest AIS
    budget): its number still moves with the budget. None when the file has no
    such gains (one training budget)."""
    if "epochs" not in ds.dims or "epoch_gain" not in ds or "epoch_gain_se" not in ds:
        return None
    scored = ds[QUALITY].isel(ais_betas=-1, missing_dims="ignore").notnull()
    largest = ds["epochs"].where(scored).max("epochs")
    drawn = drawn_epochs(ds)
    at_largest = ds["epochs"] == largest
    gain, se = (ds[name].isel(ais_betas=-1, missing_dims="ignore").where(at_largest).sum("epochs", min_count=1)
                for name in ("epoch_gain", "epoch_gain_se"))
    return (drawn == largest) & (gain > RISING_SIGMAS * se)


def draw(ds: xr.Dataset) -> Figure:
    """The figure: one errorbar container per method at the connectivity, in the file's order; ``dense``
    and the methods with ``uses_connectivity`` = 0 lines. A file with ``train_log_likelihood`` gets a
    second panel, the generalisation gap drawn the same way. Budgets: :func:`at_drawn_budget`."""
    rising = still_rising(ds)
    ds = at_drawn_budget(ds)
    if rising is not None:
        rising = rising & ds[QUALITY].notnull()
    panels = [ds[QUALITY]] + ([generalisation_gap(ds)] if TRAIN in ds else [])
    if len(panels) == 1:
        fig, axes = new_figure(1, aspect=1.25)
    else:
        fig, axes = new_figure(2, ncols=2, aspect=1.1)
    for ax, values in zip(axes.flat, panels):
        _panel(ax, ds, values, rising)
    axes[0, 0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    return fig


def _panel(ax, ds: xr.Dataset, values: xr.DataArray, rising: xr.DataArray | None) -> None:
    x = ds["connectivity"].values
    alpha = float(ds.attrs.get("deep_r_alpha", 0.0))  # DEEP R's L1 prior; 0 (or absent): none
    for k, method in enumerate(ds["method"].values):
        s = seed_interval(values.sel({"method": method}))
        mean = s["mean"].values
        if method == DENSE:
            ax.plot(x, mean, linestyle="--", color="black", linewidth=0.8, label=DENSE)
            band(ax, x, s["lower"].values, s["upper"].values, "black")
            continue
        if "uses_connectivity" in ds.coords and not int(ds["uses_connectivity"].sel({"method": method})):
            label = str(method)
            if "final_density" in ds:
                label += f" (density {float(ds['final_density'].sel({'method': method}).mean()):.2f})"
            ax.plot(x, mean, linestyle=":", color=colour(k), linewidth=1.0, label=label)
            band(ax, x, s["lower"].values, s["upper"].values, colour(k))
            continue
        label = f"{method} (alpha {alpha:g})" if method == DEEP_R and alpha > 0 else str(method)
        ax.errorbar(x, mean, yerr=[mean - s["lower"].values, s["upper"].values - mean], marker="o", capsize=2,
                    color=colour(k), label=label)
        flags = None if rising is None else rising.isel(method=k).any("seed").values
        if flags is not None and flags.any():
            ax.plot(x[flags], mean[flags], linestyle="none", marker="o", ms=6, markerfacecolor="white",
                    markeredgecolor=colour(k), label=f"{method}: a seed still rising")
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(axis_label(ds["connectivity"]))
    ax.set_ylabel(axis_label(values))
