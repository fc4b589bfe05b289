"""Data sets: MNIST from local files, binarisation, splits, a planted teacher RBM, bars-and-stripes.

Every data set is an ``xarray.Dataset`` with a ``sample`` dimension and its states in
``images`` (sample, row, col) or ``states`` (sample, visible);
:func:`dilution.data.split.as_matrix` gives the (n, n_visible) array. Import from the
submodules: ``mnist``, ``binarize``, ``split``, ``teacher``, ``bars_stripes``.
"""

from __future__ import annotations

from . import bars_stripes, binarize, mnist, split, teacher

__all__ = ["mnist", "binarize", "split", "teacher", "bars_stripes"]
