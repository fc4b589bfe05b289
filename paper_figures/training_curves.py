"""Training curves from one or more ``history.nc`` files written by ``dilution train``.

Reads only the datasets (never trains): exact log-likelihood (or reconstruction error when a
model was too large to enumerate) against the number of updates, one line per run, labelled by
the run's folder. Axis labels are the variables' CF attributes, "long_name (units)".

    python paper_figures/training_curves.py runs/*/history.nc --output figures/training_curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from dilution.io import atomic_write, load_dataset  # noqa: E402

__all__ = ["axis_label", "plot", "draw", "main"]


def axis_label(da: xr.DataArray) -> str:
    """``"long_name (units)"`` from a variable's CF attributes.

    Raises
    ------
    ValueError
        If ``long_name`` or ``units`` is missing: the figure would have an unlabelled axis.
    """
    long_name, units = da.attrs.get("long_name"), da.attrs.get("units")
    if not long_name or not units:
        raise ValueError(
            f"variable {da.name!r} lacks the CF attributes long_name and units (its attrs: {sorted(da.attrs)}); "
            "expected a history written by dilution, which labels every variable"
        )
    return f"{long_name} ({units})"


def plot(histories: list[Path], ax) -> str:
    """Draw one line per history on ``ax``, labelled by the run's folder; return the variable drawn.

    The exact log-likelihood is drawn when every run has it, otherwise the reconstruction error
    (the same quantity for all runs, so they share one y axis). Step 0 is drawn at 1 on the log axis.
    """
    if not histories:
        raise ValueError("no history files given")
    runs = [(Path(p).parent.name, load_dataset(p)) for p in histories]
    enumerable = all(np.isfinite(ds["log_likelihood"].values).any() for _, ds in runs)
    var = "log_likelihood" if enumerable else "reconstruction_error"
    labels = {(axis_label(ds["step"]), axis_label(ds[var])) for _, ds in runs}
    if len(labels) > 1:
        raise ValueError(f"the histories label {var!r} or 'step' differently, so they cannot share axes: {sorted(labels)}")
    for name, ds in runs:
        ax.plot(np.maximum(ds["step"].values, 1), ds[var].values, marker="o", ms=3, label=name)
    xlabel, ylabel = labels.pop()
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    return var


def draw(histories: list[Path], output: Path) -> Path:
    """Write the figure of :func:`plot` to ``output`` (atomically)."""
    fig, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
    try:
        plot(histories, ax)
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(output) as tmp:
            fig.savefig(tmp, dpi=150, format=output.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("histories", nargs="+", type=Path, help="history.nc files")
    parser.add_argument("--output", "-o", type=Path, default=Path("figures/training_curves.png"))
    args = parser.parse_args(argv)
    print(f"wrote {draw(args.histories, args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
