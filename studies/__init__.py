"""studies: phase-diagram studies of dilution, built on ``dilution`` and ``analysis``.

* :mod:`studies.spec`: a study as a validated TOML spec (grid ``protocol x pruning_time x
  pruning_fraction x n_hidden x seed``, training, stopping rule, evaluation, refinement);
* :mod:`studies.data`: the study's data and its reference levels (teacher, independent units);
* :mod:`studies.convergence`: training every point until held-out quality has converged;
* :mod:`studies.tasks`: the task graph (shared dense runs, one task per pruned point);
* :mod:`studies.point`: one task, resumable, written atomically to its own file;
* :mod:`studies.evaluate`: the quality of a trained point (exact or AIS likelihood, metrics);
* :mod:`studies.manifest`: per-task status, attempts, wall time, host and error;
* :mod:`studies.runner`: every task on a serial or ``dask.distributed`` executor, with retries;
* :mod:`studies.merge`: the finished tasks as one labelled Dataset (``study.nc``);
* :mod:`studies.refine`: adaptive refinement of the fractions around the transition;
* :mod:`studies.report`: transition table, masks, couplings, samples and figures of a study;
* :mod:`studies.cost`: the estimated cost printed before a study starts;
* :mod:`studies.rewiring`, :mod:`studies.stationary`: the rewiring and stationary-distribution
  experiments;
* :mod:`studies.builtin`, :mod:`studies.cli`, :mod:`studies.reproduce`: built-in studies,
  ``dilution study ...`` and ``dilution reproduce``.
"""
