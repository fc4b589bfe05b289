"""Training curves from one or more ``history.nc`` files written by ``dilution train``.

Reads only the datasets (never trains): exact log-likelihood (or reconstruction error when the
model was too large to enumerate) against the number of updates, one line per run, labelled by
the run's folder.

    python paper_figures/training_curves.py runs/*/history.nc --output figures/training_curves.png
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402


def draw(histories: list[Path], output: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
    ylabel = None
    for path in histories:
        ds = xr.open_dataset(path, engine="h5netcdf")
        ll = ds["log_likelihood"].values
        var = "log_likelihood" if np.isfinite(ll).any() else "reconstruction_error"
        ylabel = ylabel or ds[var].attrs.get("long_name", var.replace("_", " "))
        step = ds["step"].values
        ax.plot(np.maximum(step, 1), ds[var].values, marker="o", ms=3, label=path.parent.name)
    ax.set_xscale("log")
    ax.set_xlabel("updates")
    ax.set_ylabel(ylabel or "")
    ax.legend(fontsize=7)
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, suffix=output.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=150)
        os.replace(tmp, output)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
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
