"""Evaluation of a study's trained model: test log-likelihood and the optional metrics of ``[evaluation]``.

:func:`evaluate` returns named scalars, each with its CF ``long_name`` and ``units``
(:class:`Metric`), and the method of the log-likelihood (exact enumeration or AIS with its
budget); :func:`metric_variables` lists the names a spec produces before anything is computed,
so a gathered study can allocate its arrays. Every draw comes from a stream of the point's run
seed with its own purpose (``"studies.ais"``, ``"studies.raise"``, ``"studies.samples"``,
``"studies.mixing"``), so switching a metric on or off never changes another metric's value.

The optional metrics (:data:`studies.spec.METRICS`):

* ``classifier``: :func:`analysis.classifier.classifier_score` of model samples (Inception-style
  score, coverage entropy, mean max probability) with a classifier trained once per study on the
  MNIST training split (:func:`study_classifier`);
* ``moments``: :func:`analysis.moments.moment_errors` of model samples against the test set;
* ``aats``: :func:`analysis.aats.adversarial_accuracy` of model samples against as many test
  samples (0.5: indistinguishable);
* ``couplings``: the effective Ising couplings of the visible marginal
  (:func:`analysis.ising.ising_parameters`, Decelle et al. 2023): mean and standard deviation of
  ``|J_jk|`` over pairs ``j < k``, largest ``|J|``, fraction of pairs above the threshold;
* ``mixing``: integrated autocorrelation time (:func:`analysis.autocorr.integrated_time`) of the
  free energy ``F(v)`` along Gibbs chains of the trained model, in sweeps: does dilution speed
  sampling?
* ``mask``: isolated visible and hidden units (no connection), mean degrees.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from dilution.model import RBM
from dilution.rng import derive_seed

from .data import StudyData
from .spec import EvaluationSpec, MnistData, StudySpec

__all__ = ["Metric", "Evaluation", "metric_variables", "evaluate", "study_classifier", "log_likelihood_method",
           "raise_checkpoint", "remove_checkpoints"]


class Metric(NamedTuple):
    """One scalar result with its CF attributes."""

    value: float
    long_name: str
    units: str


class Evaluation(NamedTuple):
    """Output of :func:`evaluate`.

    Attributes
    ----------
    metrics : dict of str to Metric
        In the order of :func:`metric_variables`.
    method : str
        How the test log-likelihood was computed (enumeration, or AIS with its budget).
    """

    metrics: dict
    method: str


_NATS = "nats per sample"
_LIKELIHOOD = {
    "test_log_likelihood": ("mean test log-likelihood", _NATS),
    "test_log_likelihood_se": ("standard error of the mean test log-likelihood over test samples (log Z fixed)",
                               _NATS),
    "log_partition": ("log partition function", "nats"),
    "log_partition_se": ("standard error of log Z (AIS delta method; 0 for exact enumeration)", "nats"),
}
# with evaluation.ais_reverse under AIS: the other side of the sandwich
_REVERSE = {
    "test_log_likelihood_lower": ("mean test log-likelihood with log_partition_upper (a stochastic lower bound "
                                  "when the reverse chains start from exact samples)", _NATS),
    "log_partition_upper": ("reverse AIS estimate of log Z (a stochastic upper bound when its chains start from "
                            "exact samples; approximate from Gibbs samples)", "nats"),
    "log_partition_upper_se": ("standard error of log_partition_upper (AIS delta method)", "nats"),
    "log_partition_upper_ess": ("effective sample size of the reverse AIS weights, (sum w)^2 / sum w^2", "1"),
}
# with evaluation.ais_raise under AIS: RAISE from the test images over the forward run's betas
_RAISE = {
    "test_log_likelihood_raise": ("mean test log-likelihood by RAISE (reverse AIS from each test image: "
                                  "conservative where the annealing does not equilibrate, not a bound on the RBM's)",
                                  _NATS),
    "test_log_likelihood_raise_se": ("standard error of test_log_likelihood_raise over the test images", _NATS),
    "raise_gap": ("test_log_likelihood - test_log_likelihood_raise (forward AIS less RAISE, paired over the test "
                  "images)", _NATS),
    "raise_gap_se": ("standard error of raise_gap: the spread over the test images of the per-image difference "
                     "(paired; the forward log Z's own error, log_partition_se, is not included)", _NATS),
}
_OPTIONAL = {
    "classifier": {
        "classifier_inception_score": ("auxiliary-classifier Inception-style score of model samples", "1"),
        "classifier_coverage_entropy": ("entropy of the predicted-digit histogram of model samples", "nats"),
        "classifier_mean_max_probability": ("mean largest class probability of model samples", "1"),
    },
    "moments": {
        "moment_mean_rmse": ("rms error of the model's unit means against the test set", "1"),
        "moment_correlation_rmse": ("rms error of the model's connected pair correlations against the test set",
                                    "1"),
        "moment_correlation_pearson_r": ("Pearson r of model and test connected pair correlations", "1"),
    },
    "aats": {
        "aats": ("nearest-neighbour adversarial accuracy of samples against test data (0.5 = indistinguishable)",
                 "1"),
        "aats_truth": ("fraction of test points whose nearest neighbour is another test point", "1"),
        "aats_syn": ("fraction of model samples whose nearest neighbour is another sample", "1"),
    },
    "couplings": {
        "coupling_mean_abs": ("mean |J_jk| of the effective Ising couplings over pairs j < k", "1"),
        "coupling_std": ("standard deviation of the effective Ising couplings J_jk over pairs j < k", "1"),
        "coupling_max_abs": ("largest |J_jk| of the effective Ising couplings", "1"),
        "coupling_fraction_above": ("fraction of pairs j < k with |J_jk| above evaluation.coupling_threshold",
                                    "1"),
    },
    "mixing": {
        "mixing_tau": ("integrated autocorrelation time of the free energy along Gibbs chains", "sweeps"),
        "mixing_tau_relative_error": ("Madras-Sokal relative standard error of mixing_tau", "1"),
        "mixing_reliable": ("mixing trace at least 50 autocorrelation times long (1) or not (0)", "1"),
    },
    "mask": {
        "mask_isolated_visible": ("visible units without any connection", "1"),
        "mask_isolated_hidden": ("hidden units without any connection", "1"),
        "mask_mean_visible_degree": ("mean number of connections of a visible unit", "1"),
        "mask_mean_hidden_degree": ("mean number of connections of a hidden unit", "1"),
    },
}


def metric_variables(evaluation: EvaluationSpec) -> dict[str, tuple[str, str]]:
    """``name -> (long_name, units)`` of every scalar :func:`evaluate` returns for ``evaluation``."""
    out = dict(_LIKELIHOOD)
    if evaluation.log_likelihood == "ais" and evaluation.ais_reverse:
        out.update(_REVERSE)
    if evaluation.log_likelihood == "ais" and evaluation.ais_raise:
        out.update(_RAISE)
    for name in evaluation.metrics:
        out.update(_OPTIONAL[name])
    return out


def log_likelihood_method(evaluation: EvaluationSpec) -> str:
    """The label of the test log-likelihood's method (stored with the value)."""
    from dilution.ais import REVERSE_BURN_IN

    if evaluation.log_likelihood == "exact":
        return "exact enumeration of the smaller layer"
    resampling = (f" in {evaluation.ais_groups} populations resampled when their effective sample size fell below "
                  f"{evaluation.ais_resample:g} of their size" if evaluation.ais_resample else "")
    betas = ("linear betas" if evaluation.ais_schedule == "linear" else
             "betas in the classic schedule's proportions (1/29 in [0, 0.5), 8/29 in [0.5, 0.9), 20/29 in [0.9, 1])")
    reverse = (f"; then as many reverse chains from the forward end states after {REVERSE_BURN_IN} Gibbs sweeps "
               "(test_log_likelihood_lower: the other side of the sandwich)" if evaluation.ais_reverse else "")
    raised = (f"; and RAISE, {evaluation.ais_raise} reverse chain{'s' if evaluation.ais_raise > 1 else ''} from each "
              "test image over the same betas (test_log_likelihood_raise: conservative where the annealing does "
              "not equilibrate; raise_gap the forward estimate less it)" if evaluation.ais_raise else "")
    return (f"AIS, {evaluation.ais_chains} forward chains{resampling}, {evaluation.ais_betas} {betas}, base rate "
            "from the training set (stochastic upper bound on the log-likelihood; log_partition_se its AIS standard "
            f"error){reverse}{raised}")


def _stream(seed: int, purpose: str) -> int:
    return int(derive_seed(seed, purpose).generate_state(1)[0])


def _fresh_if_stale(run, *args, **options):
    """``run(*args, **options)``; a ``checkpoint`` (an option) that another model or evaluation left
    under this name is a cache, not a result: it is removed and the run starts afresh."""
    from dilution.ais import CheckpointMismatchError

    try:
        return run(*args, **options)
    except CheckpointMismatchError:
        options["checkpoint"].unlink()
        return run(*args, **options)


def _log_likelihood(evaluation: EvaluationSpec, rbm: RBM, data: StudyData, seed: int,
                    checkpoint: Path | None, progress: bool = False) -> dict[str, float]:
    from analysis.likelihood import ais_log_likelihood, exact_log_likelihood

    if evaluation.log_likelihood == "exact":
        ds = exact_log_likelihood(rbm, data.test)
        log_z_se = 0.0
    else:
        from dilution.schedules import classic, linear

        betas = (linear if evaluation.ais_schedule == "linear" else classic)(evaluation.ais_betas)
        options = dict(n_chains=evaluation.ais_chains, seed=_stream(seed, "studies.ais"), betas=betas,
                       base_data=data.train, reverse=evaluation.ais_reverse, resample=evaluation.ais_resample,
                       n_groups=evaluation.ais_groups, progress=progress, checkpoint=checkpoint)
        ds = _fresh_if_stale(ais_log_likelihood, rbm, data.test, **options)
        log_z_se = float(ds["log_z_std"])
    out = {"test_log_likelihood": float(ds["mean_log_likelihood"]), "test_log_likelihood_se": float(ds["std_error"]),
           "log_partition": float(ds["log_z"]), "log_partition_se": log_z_se}
    if "log_z_upper" in ds:
        out.update(test_log_likelihood_lower=float(ds["mean_log_likelihood_lower"]),
                   log_partition_upper=float(ds["log_z_upper"]), log_partition_upper_se=float(ds["log_z_upper_std"]),
                   log_partition_upper_ess=float(ds["ess_reverse"]))
    if evaluation.log_likelihood == "ais" and evaluation.ais_raise:
        out.update(_raise(evaluation, rbm, data, seed, betas, ds["log_likelihood"].values,
                          None if checkpoint is None else raise_checkpoint(checkpoint), progress))
    return out


def raise_checkpoint(ais_checkpoint: str | os.PathLike) -> Path:
    """The RAISE run's checkpoint beside :func:`evaluate`'s ``ais_checkpoint``: ``<stem>-raise<suffix>``."""
    path = Path(ais_checkpoint)
    return path.with_name(f"{path.stem}-raise{path.suffix}")


def remove_checkpoints(ais_checkpoint: str | os.PathLike) -> None:
    """Remove :func:`evaluate`'s AIS and RAISE checkpoints (once its result is kept); absent ones are fine."""
    Path(ais_checkpoint).unlink(missing_ok=True)
    raise_checkpoint(ais_checkpoint).unlink(missing_ok=True)


def _raise(evaluation: EvaluationSpec, rbm: RBM, data: StudyData, seed: int, betas: np.ndarray,
           forward: np.ndarray, checkpoint: Path | None, progress: bool = False) -> dict[str, float]:
    """:data:`_RAISE` of the test images, ``forward`` their forward-AIS log-likelihoods, shape (n_test,).

    RAISE runs the forward run's schedule backwards from each image (Burda, Grosse & Salakhutdinov
    2015); the gap's standard error is that of the per-image difference, whose spread over the
    images is far below either side's, since an image's ``-F(v)`` enters both.
    """
    from dilution.ais import raise_log_likelihood

    options = dict(base_data=data.train, seed=_stream(seed, "studies.raise"), betas=betas,
                   chains_per_row=evaluation.ais_raise, progress=progress, checkpoint=checkpoint)
    ds = _fresh_if_stale(raise_log_likelihood, rbm, data.test, **options)
    gap = forward - ds["log_likelihood_row"].values
    return {"test_log_likelihood_raise": float(ds["log_likelihood"]),
            "test_log_likelihood_raise_se": float(ds["log_likelihood_std"]),
            "raise_gap": float(gap.mean()), "raise_gap_se": float(gap.std(ddof=1) / np.sqrt(gap.size))}


def _mixing(evaluation: EvaluationSpec, rbm: RBM, seed: int) -> dict[str, float]:
    from analysis.autocorr import integrated_time
    from dilution.conditionals import free_energy
    from dilution.gibbs import advance, init_state

    state = init_state(rbm, evaluation.mixing_chains, seed=_stream(seed, "studies.mixing"))
    state = advance(rbm, state, evaluation.mixing_burn_in, progress=False)
    w = rbm.weights.astype(np.float64)
    a = rbm.visible_bias.astype(np.float64)
    b = rbm.hidden_bias.astype(np.float64)
    zero = np.zeros_like(a)
    trace = np.empty((evaluation.mixing_chains, evaluation.mixing_sweeps))
    for t in range(evaluation.mixing_sweeps):
        state = advance(rbm, state, 1, progress=False)
        trace[:, t] = free_energy(state.visible.astype(np.float64), w, a, b, 1.0, zero)
    ds = integrated_time(trace)
    return {"mixing_tau": float(ds["tau_mean"]), "mixing_tau_relative_error": float(ds["relative_error"]),
            "mixing_reliable": float(bool(ds["reliable"]))}


def _couplings(evaluation: EvaluationSpec, rbm: RBM) -> dict[str, float]:
    from analysis.ising import ising_parameters

    j = ising_parameters(rbm)["coupling"].values
    values = np.abs(j[np.triu_indices(j.shape[0], k=1)])
    signed = j[np.triu_indices(j.shape[0], k=1)]
    return {"coupling_mean_abs": float(values.mean()), "coupling_std": float(signed.std()),
            "coupling_max_abs": float(values.max()),
            "coupling_fraction_above": float(np.mean(values > evaluation.coupling_threshold))}


def _mask(rbm: RBM) -> dict[str, float]:
    visible = rbm.mask.sum(axis=1)
    hidden = rbm.mask.sum(axis=0)
    return {"mask_isolated_visible": float(np.count_nonzero(visible == 0)),
            "mask_isolated_hidden": float(np.count_nonzero(hidden == 0)),
            "mask_mean_visible_degree": float(visible.mean()), "mask_mean_hidden_degree": float(hidden.mean())}


def evaluate(evaluation: EvaluationSpec, rbm: RBM, data: StudyData, seed: int, *, classifier=None,
             ais_checkpoint: str | os.PathLike | None = None, progress: bool = False) -> Evaluation:
    """Test log-likelihood and the switched-on metrics of one trained model.

    Parameters
    ----------
    evaluation : EvaluationSpec
        A validated ``[evaluation]`` table.
    rbm : RBM
        The trained model, shape (n_visible, n_hidden).
    data : StudyData
        ``test`` (shape (n_test, n_visible)) is evaluated; ``train`` sets the AIS base rate.
    seed : int
        The point's run seed; every draw is a stream of it with its own purpose.
    classifier : analysis.classifier.DigitClassifier, optional
        Required when ``"classifier"`` is in ``evaluation.metrics`` (:func:`study_classifier`).
    ais_checkpoint : path, optional
        With AIS, the file that makes the AIS run resumable (:func:`dilution.ais.log_partition`'s
        ``checkpoint``; RAISE's is :func:`raise_checkpoint` of it): an interrupted evaluation, made
        again, continues from it. A file left by another model or evaluation is replaced. The
        caller removes them (:func:`remove_checkpoints`) once the result is kept.
    progress : bool
        Progress bars with ETA on standard error for the AIS and RAISE runs and the sampling (an
        AIS evaluation of a 784 x 500 model runs for minutes to hours). Off by default: a study's
        tasks report per task instead.

    Returns
    -------
    Evaluation
        ``metrics`` with exactly the names of :func:`metric_variables`.
    """
    wanted = set(evaluation.metrics)
    if "classifier" in wanted and classifier is None:
        raise ValueError("evaluation.metrics has 'classifier' but no classifier was given; build it with "
                         "studies.evaluate.study_classifier(spec)")
    values = _log_likelihood(evaluation, rbm, data, seed, None if ais_checkpoint is None else Path(ais_checkpoint),
                             progress)
    if wanted & {"classifier", "moments", "aats"}:
        from dilution.gibbs import sample

        samples = sample(rbm, evaluation.n_samples, evaluation.n_sweeps, seed=_stream(seed, "studies.samples"),
                         progress=progress).astype(np.float64)
        if "classifier" in wanted:
            from analysis.classifier import classifier_score

            ds = classifier_score(classifier, samples)
            values.update(classifier_inception_score=float(ds["inception_score"]),
                          classifier_coverage_entropy=float(ds["coverage_entropy"]),
                          classifier_mean_max_probability=float(ds["mean_max_probability"]))
        if "moments" in wanted:
            from analysis.moments import moment_errors

            ds = moment_errors(samples, data.test)
            values.update(moment_mean_rmse=float(ds["rmse"].sel(statistic="mean")),
                          moment_correlation_rmse=float(ds["rmse"].sel(statistic="correlation")),
                          moment_correlation_pearson_r=float(ds["pearson_r"].sel(statistic="correlation")))
        if "aats" in wanted:
            from analysis.aats import adversarial_accuracy

            n = min(len(samples), len(data.test))  # the score's 0.5 reference needs equal sizes
            ds = adversarial_accuracy(data.test[:n], samples[:n])
            values.update(aats=float(ds["aa_ts"]), aats_truth=float(ds["aa_truth"]), aats_syn=float(ds["aa_syn"]))
    if "couplings" in wanted:
        values.update(_couplings(evaluation, rbm))
    if "mixing" in wanted:
        values.update(_mixing(evaluation, rbm, seed))
    if "mask" in wanted:
        values.update(_mask(rbm))
    metrics = {name: Metric(values[name], long_name, units)
               for name, (long_name, units) in metric_variables(evaluation).items()}
    return Evaluation(metrics, log_likelihood_method(evaluation))


def study_classifier(spec: StudySpec, *, progress: bool | None = False):
    """The auxiliary digit classifier of an MNIST study, trained once and cached in its output folder.

    Trained on the whole MNIST training split of ``spec.data.path`` with seed
    ``spec.evaluation.classifier_seed`` (:func:`analysis.classifier.load_or_train_classifier`) and
    saved atomically as ``<output>/classifier-seed<seed>.nc``; a second worker that trains it at
    the same time writes the same file.
    """
    if not isinstance(spec.data, MnistData):
        raise ValueError(f"the auxiliary classifier scores MNIST digits; study {spec.name!r} has data.kind = "
                         f"{spec.data.kind!r}")
    from analysis.classifier import load_or_train_classifier
    from dilution.data import mnist

    train = mnist.load_mnist(spec.data.path, "train")
    test = mnist.load_mnist(spec.data.path, "test")
    seed = spec.evaluation.classifier_seed
    return load_or_train_classifier(
        Path(spec.output) / f"classifier-seed{seed}.nc", train["images"].values, train["labels"].values, seed=seed,
        test_images=test["images"].values, test_labels=test["labels"].values, progress=progress,
    )
