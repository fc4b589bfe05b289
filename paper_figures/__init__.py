"""Every figure of the paper from saved datasets: ``python -m paper_figures [--data DIR] [--out DIR]``.

One module per figure (``draw(datasets) -> Figure`` and a thin ``load``), the table of figures
in :mod:`paper_figures.registry`, the house style in :mod:`paper_figures.style`. This package
only reads netCDF files and draws: it never trains, samples or estimates, and imports nothing
first-party but :mod:`dilution.io`.
"""

from __future__ import annotations

__all__: list[str] = []
