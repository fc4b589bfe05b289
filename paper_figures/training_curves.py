"""Training curves from one or more ``history.nc`` files written by ``dilution train``.

Reads only the datasets (never trains): exact log-likelihood (or reconstruction error when a
model was too large to enumerate) against the number of updates, one line per run, labelled by
the run's folder. Axis labels are the variables' CF attributes, "long_name (units)".

    python -m paper_figures.training_curves runs/*/history.nc --output figures/training_curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from dilution.io import atomic_write, load_dataset

from .style import axis_label, new_figure

__all__ = ["axis_label", "load", "plot", "draw", "main"]


def load(*histories: Path) -> tuple[list[tuple[str, xr.Dataset]]]:
    """The runs as (folder name, history Dataset), in the order given."""
    if not histories:
        raise ValueError("no history files given")
    return ([(Path(p).parent.name, load_dataset(p)) for p in histories],)


def plot(runs: list[tuple[str, xr.Dataset]], ax) -> str:
    """Draw one line per run on ``ax``, labelled by its name; return the variable drawn.

    The exact log-likelihood is drawn when every run has it, otherwise the reconstruction error
    (the same quantity for all runs, so they share one y axis). Step 0 is drawn at 1 on the log axis.
    """
    if not runs:
        raise ValueError("no runs given")
    enumerable = all(np.isfinite(ds["log_likelihood"].values).any() for _, ds in runs)
    var = "log_likelihood" if enumerable else "reconstruction_error"
    labels = {(axis_label(ds["step"]), axis_label(ds[var])) for _, ds in runs}
    if len(labels) > 1:
        raise ValueError(f"the histories label {var!r} or 'step' differently, so they cannot share axes: "
                         f"{sorted(labels)}")
    for name, ds in runs:
        ax.plot(np.maximum(ds["step"].values, 1), ds[var].values, marker="o", ms=3, label=name)
    xlabel, ylabel = labels.pop()
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return var


def draw(runs: list[tuple[str, xr.Dataset]]) -> Figure:
    """The figure of :func:`plot`, one journal column wide."""
    fig, axes = new_figure(1, aspect=0.7)
    try:
        plot(runs, axes[0, 0])
    except BaseException:
        plt.close(fig)
        raise
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("histories", nargs="+", type=Path, help="history.nc files")
    parser.add_argument("--output", "-o", type=Path, default=Path("figures/training_curves.png"))
    args = parser.parse_args(argv)
    fig = draw(*load(*args.histories))
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.output) as tmp:
            fig.savefig(tmp, dpi=150, format=args.output.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
