"""studies: phase-diagram studies of dilution, built on ``dilution`` and ``analysis``.

* :mod:`studies.spec`: a study as a validated TOML spec (grid ``n_hidden x protocol x
  pruning_fraction x seed``, training, stopping rule, evaluation);
* :mod:`studies.convergence`: training every point until held-out quality has converged;
* :mod:`studies.point`: one grid point, resumable, written to its own file;
* :mod:`studies.runner`: every point on a serial or ``dask.distributed`` executor, gathered
  into one labelled Dataset;
* :mod:`studies.builtin`, :mod:`studies.cli`: built-in specs and ``dilution study run``.
"""
