"""Every figure and table of the paper from saved datasets: ``python -m paper_figures [--data DIR] [--out DIR]``.

One module per figure (``draw(datasets) -> Figure`` and a thin ``load`` that checks the file
against the figure's :class:`~paper_figures.schema.Schema`), the rewiring comparison's table in
:mod:`paper_figures.comparison_table` (Markdown, LaTeX and CSV), the list of figures and tables in
:mod:`paper_figures.registry`, the house style in :mod:`paper_figures.style`. This package
only reads netCDF files and draws: it never trains, samples or estimates, and imports nothing
first-party but :mod:`dilution.io`.

The data folder (``--data``, default ``reproduce/data`` where ``dilution reproduce`` writes)
holds, for each built-in study ``<name>`` (quick, teacher, mnist) a folder ``study-<name>/``
written by ``dilution study run <name> --output DATA/study-<name> --report`` with

* ``study.nc``: the merged study (``dilution study run <name>``; dims ``protocol``,
  ``pruning_time``, ``pruning_fraction``, ``n_hidden``, ``seed``; ``test_log_likelihood``,
  ``converged``, ``finished``, ``teacher_test_log_likelihood``, ``independent_test_log_likelihood``,
  the spec as JSON in the attr ``spec``);
* ``transition.nc``: ``analysis.transition.transition_table`` of it (``location``,
  ``location_lower``, ``location_upper``, ``width``, ``width_lower``, ``width_upper``, ``verdict``
  over ``protocol``, ``pruning_time``, ``n_hidden``), optionally merged with
  ``analysis.transition.finite_size_scaling`` (``f_inf``, ``inverse_size_slope``,
  ``width_amplitude``, ``width_exponent``);
* ``masks.nc``: ``analysis.masks.mask_summary`` of the final masks (``mean_visible_degree``,
  optionally ``teacher_recall`` and ``teacher_chance_recall``);
* ``ising.nc``: ``analysis.ising.ising_parameters`` of a dense and a pruned model stacked over
  ``model`` (``coupling``);
* ``samples.nc``: ``dilution sample``'s ``samples`` of one model per fraction, stacked over
  ``pruning_fraction``;
* ``gap.nc``: ``analysis.transition.gap_table`` of the first ``after`` protocol against the
  first ``scratch`` one (``gap``, ``gap_lower``, ``gap_upper``);

and beside them ``rewiring-ncg.nc`` (``density``, ``nll`` over ``implementation``,
``initial_density``, ``seed``, ``epoch``), ``rewiring-mnist.nc`` and ``rewiring-mnist-500.nc`` (``test_log_likelihood`` over
``method``, ``connectivity``, ``seed``), ``stationary-inclusion.nc``
(``analysis.stationary.inclusion_probabilities`` stacked over ``method``),
``stationary-divergence.nc`` (``analysis.stationary.mask_divergence`` stacked over ``estimator``
and ``steps``) and ``train-*/history.nc`` (``dilution train``). Each figure module's docstring
states its schema exactly; ``python -m paper_figures --help`` lists the files of every figure.
"""

from __future__ import annotations

__all__: list[str] = []
