"""Reference posteriors of DEEP R and soft-DEEP R on tiny masked RBMs, sampled exactly.

The target (digest ``ncg_deepr.md`` C.2, option b: biases sampled with a flat prior; Bellec et al.
2018, Theorems 1 and 2) over the parameters ``theta`` (shape ``(n_visible, n_hidden)``) of a
network with fixed signs ``s`` and over the biases ``b`` (visible) and ``c`` (hidden) is

    soft-DEEP R:  pi(theta, b, c) ∝ exp{ (1/T) [ lbar(s ⊙ theta⁺; b, c) - alpha sum theta⁺ - (lambda/2) (|b|² + |c|²) ] }
                                    · 1[theta >= theta_min]
    DEEP R:       pi_K(M, theta_M, b, c) ∝ 1[|M| = K] exp{ (1/T) [ lbar - alpha 1ᵀ theta_M - (lambda/2) (|b|² + |c|²) ] },
                                    theta_M >= 0

with ``lbar`` the *mean* log-likelihood of the data (the mini-batch mean convention of the
rules, so the effective temperature on the summed log-likelihood is ``N T``; ``T = 1/N`` is the
ordinary Bayesian posterior), ``lambda = bias_l2`` a Gaussian prior on the biases,
``theta⁺`` the active part (``theta >= 0``, the pair's weight is
``s theta``) and ``M = 1[theta >= 0]`` the mask. soft-DEEP R's dormant parameters are flat on
``[theta_min, 0)``; DEEP R's have no value (NaN in the draws, as in :mod:`dilution.deep_r`).
:meth:`Posterior.log_density` is this formula, the one definition every sampler here uses.
Without data (``data=None``, the prior-only limit) ``lbar = 0`` and the biases are held fixed.

Why the bias prior must not be flat: as a hidden bias ``c_j -> -inf`` the unit is clamped off and
``lbar`` tends to the finite likelihood of the remaining model, so ``exp(lbar / T)`` does not decay
and a flat prior leaves the posterior improper. A Langevin bias step with weight decay
``lambda`` (``b <- b + eta (g_b - lambda b) + sqrt(2 eta T) nu``) has this target; the flat
``biases="langevin"`` of :mod:`dilution.deep_r` lets ``c`` diffuse without bound.

Sampler (:func:`sample_posterior`): many chains in lockstep, vectorised in numpy, with the exact
likelihood and gradient by enumerating the hidden layer (:func:`batched_log_likelihood`). Each
iteration is

1. a Metropolis-adjusted Langevin step on every free coordinate, the proposal folded at the
   lower bound (``theta_min`` for soft-DEEP R; 0 for DEEP R's active parameters, so ``|M|`` is
   kept) with the folded-normal proposal density in the Metropolis-Hastings ratio; this also
   corrects the L1 kink at ``theta = 0``;
2. a swap move: one uniformly chosen active pair and one dormant pair exchange their ``theta``
   (a symmetric involution that keeps ``|M|``, accepted with the density ratio). DEEP R's mask
   moves only by swaps; for soft-DEEP R they speed up mixing between masks of equal size.

Step sizes are adapted per chain during warm-up (Robbins-Monro towards MALA's optimal acceptance
0.574) under a diagonal preconditioner (one pooled scale for all ``theta``, one per bias)
estimated at mid warm-up and again at its end, followed by a short re-adaptation; then
everything is frozen, so the recorded chain is a time-homogeneous Metropolis-Hastings chain with
``pi`` as its stationary law. Measured (16 chains x 4000 draws, 1000 warm-up, ``T = 1/N``,
``alpha = 2T``): split R-hat <= 1.006 on the 4 x 2 model with bars-and-stripes 2 x 2 data,
<= 1.008 on 6 x 3, <= 1.012 on bars-and-stripes 3 x 3 with 3 hidden units (weights mix slowest:
hidden-unit modes); 4-5 s each on one core.

Per-mask optimisation (:func:`profile_log_likelihood`, :func:`mask_profiles`): the profile
likelihood ``sup_{W on M, b, c} lbar`` by L-BFGS-B with restarts, sign-constrained
(``s_ij W_ij >= 0``) for DEEP R parity or free; and the oracle best mask of every size
(digest C.4). The supremum may lie at infinite weights (bars-and-stripes does): the optimiser
then stops at its gradient tolerance with the value converged (to ~1e-8 nats across restarts)
and large finite weights. Cost: ~0.2 s per mask at 4 x 2 with 3 restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Literal, NamedTuple

import numpy as np
import xarray as xr
from scipy.optimize import minimize
from scipy.special import expit

from dilution.exact import all_states
from dilution.provenance import provenance
from dilution.rng import derive_seed
from dilution.validation import check_finite, check_int, check_seed

from .stationary import effective_sample_size, masks_from_codes, split_rhat

__all__ = [
    "MAX_HIDDEN",
    "Posterior",
    "PosteriorDraws",
    "ProfileFit",
    "batched_log_likelihood",
    "batched_gradient",
    "sample_posterior",
    "profile_log_likelihood",
    "mask_profiles",
]

# The hidden layer is enumerated for every chain at every step (2**n_hidden states).
MAX_HIDDEN = 12
_TARGET_ACCEPTANCE = 0.574  # optimal MALA acceptance (Roberts & Rosenthal 1998)
_DEEP_R_DORMANT = -1.0  # internal placeholder of DEEP R's valueless dormant theta


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """logsumexp over the last axis (scipy's costs more than the likelihood itself at these sizes)."""
    m = x.max(axis=-1)
    return m + np.log(np.exp(x - m[..., None]).sum(axis=-1))


@lru_cache(maxsize=None)
def _hidden_states(n_hidden: int) -> np.ndarray:
    states = all_states(n_hidden)
    states.flags.writeable = False
    return states


def _check_params(weights, visible_bias, hidden_bias):
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3:
        raise ValueError(f"weights must have shape (n_visible, n_hidden) or (n_chains, n_visible, n_hidden), got {w.shape}")
    c, v, h = w.shape
    if h > MAX_HIDDEN:
        raise ValueError(f"the hidden layer is enumerated: n_hidden must be <= {MAX_HIDDEN}, got {h}")
    b = np.broadcast_to(np.asarray(visible_bias, dtype=np.float64), (c, v))
    hb = np.broadcast_to(np.asarray(hidden_bias, dtype=np.float64), (c, h))
    return w, b, hb


def _terms(data, w, b, c):
    """log Z (C,), mean data free-energy term (C,), and the pieces the gradient reuses."""
    hs = _hidden_states(w.shape[2])                               # (S, H)
    act_v = b[:, None, :] + hs @ w.transpose(0, 2, 1)             # (C, S, V)
    log_w = c @ hs.T + _softplus(act_v).sum(axis=2)               # (C, S)
    log_z = _logsumexp_rows(log_w)
    act_h = c[:, None, :] + data @ w                              # (C, N, H)
    minus_f = data @ b.T + _softplus(act_h).sum(axis=2).T          # (N, C)
    return hs, act_v, log_w, log_z, act_h, minus_f.mean(axis=0)


def batched_log_likelihood(data, weights, visible_bias, hidden_bias) -> np.ndarray:
    """Exact mean log-likelihood of ``data`` under each of a batch of RBMs.

    Enumerates the hidden layer: ``log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)]``.

    Parameters
    ----------
    data : ndarray, shape (n, n_visible)
        Binary.
    weights : ndarray, shape (n_chains, n_visible, n_hidden) or (n_visible, n_hidden)
        Effective weights (mask applied).
    visible_bias : ndarray, shape (n_chains, n_visible) or (n_visible,)
    hidden_bias : ndarray, shape (n_chains, n_hidden) or (n_hidden,)

    Returns
    -------
    ndarray, shape (n_chains,)
        ``(1/n) sum_n log p(v_n)`` in nats per sample.
    """
    w, b, c = _check_params(weights, visible_bias, hidden_bias)
    x = np.asarray(data, dtype=np.float64)
    *_, log_z, _, mean_minus_f = _terms(x, w, b, c)
    return mean_minus_f - log_z


def batched_gradient(data, weights, visible_bias, hidden_bias):
    """Exact mean log-likelihood and its gradient for a batch of RBMs (see :func:`batched_log_likelihood`).

    Returns
    -------
    log_likelihood : ndarray, shape (n_chains,)
    grad_weights : ndarray, shape (n_chains, n_visible, n_hidden)
        ``<v h>_data - <v h>_model`` for every pair (masked ones included).
    grad_visible_bias : ndarray, shape (n_chains, n_visible)
    grad_hidden_bias : ndarray, shape (n_chains, n_hidden)
    """
    w, b, c = _check_params(weights, visible_bias, hidden_bias)
    x = np.asarray(data, dtype=np.float64)
    hs, act_v, log_w, log_z, act_h, mean_minus_f = _terms(x, w, b, c)
    p = np.exp(log_w - log_z[:, None])                            # (C, S)
    sig_v = expit(act_v)
    weighted = sig_v * p[:, :, None]                              # (C, S, V)
    model_v = weighted.sum(axis=1)
    model_h = p @ hs
    model_vh = weighted.transpose(0, 2, 1) @ hs
    ph = expit(act_h)                                             # (C, N, H)
    n = x.shape[0]
    data_vh = x.T @ ph / n
    return (mean_minus_f - log_z, data_vh - model_vh, x.mean(axis=0)[None, :] - model_v, ph.mean(axis=1) - model_h)


@dataclass(frozen=True, eq=False)
class Posterior:
    """The tempered posterior of soft-DEEP R or DEEP R on one tiny RBM (module docstring).

    Parameters
    ----------
    kind : "soft-deep-r" or "deep-r"
    signs : ndarray of int, shape (n_visible, n_hidden)
        The fixed signs ``s`` in {-1, +1}; compare samplers under the same signs (digest C.7).
    alpha : float
        L1 coefficient, > 0.
    temperature : float
        ``T > 0`` (on the mean log-likelihood).
    data : ndarray, shape (n, n_visible), optional
        Binary training data; None is the prior-only limit (``lbar = 0``).
    theta_min : float, optional
        soft-DEEP R's floor, < 0 (required for soft-DEEP R, refused for DEEP R).
    n_active : int, optional
        DEEP R's budget ``K`` in ``[0, n_visible n_hidden]`` (required for DEEP R, refused otherwise).
    visible_bias, hidden_bias : ndarray, shape (n_visible,) / (n_hidden,), optional
        Fixed biases. Both None with data: the biases are sampled. Without data
        the biases do not enter and are held at these values (zeros if None).
    bias_l2 : float
        ``lambda > 0``, the Gaussian prior of sampled biases (std ``sqrt(T / lambda)``); the
        default 0.01 is weak (std 3.5 at ``T = 1/8``). Ignored when the biases are fixed.
    """

    kind: Literal["soft-deep-r", "deep-r"]
    signs: np.ndarray
    alpha: float
    temperature: float
    data: np.ndarray | None = None
    theta_min: float | None = None
    n_active: int | None = None
    visible_bias: np.ndarray | None = None
    hidden_bias: np.ndarray | None = None
    bias_l2: float = 0.01

    def __post_init__(self):
        if self.kind not in ("soft-deep-r", "deep-r"):
            raise ValueError(f"Posterior.kind must be 'soft-deep-r' or 'deep-r', got {self.kind!r}")
        s = np.asarray(self.signs)
        if s.ndim != 2 or not np.all((s == 1) | (s == -1)):
            raise ValueError(f"Posterior.signs must be a 2-D array of -1 and +1, got shape {s.shape} with values "
                             f"{np.unique(s)[:5]}")
        v, h = s.shape
        if h > MAX_HIDDEN:
            raise ValueError(f"Posterior.signs: the hidden layer is enumerated, n_hidden must be <= {MAX_HIDDEN}, got {h}")
        object.__setattr__(self, "signs", s.astype(np.int8))
        if not check_finite("Posterior.alpha", self.alpha) > 0:
            raise ValueError(f"Posterior.alpha (L1 coefficient) must be > 0, got {self.alpha!r}")
        if not check_finite("Posterior.temperature", self.temperature) > 0:
            raise ValueError(f"Posterior.temperature must be > 0, got {self.temperature!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "temperature", float(self.temperature))
        if self.kind == "soft-deep-r":
            if self.theta_min is None or not check_finite("Posterior.theta_min", self.theta_min) < 0:
                raise ValueError(f"Posterior.theta_min (soft-DEEP R's floor) must be a number < 0, got {self.theta_min!r}")
            if self.n_active is not None:
                raise ValueError(f"Posterior.n_active is DEEP R's budget; soft-DEEP R has none, got {self.n_active!r}")
            object.__setattr__(self, "theta_min", float(self.theta_min))
        else:
            if self.n_active is None:
                raise ValueError("Posterior.n_active (DEEP R's budget K) is required for kind='deep-r'")
            object.__setattr__(self, "n_active", check_int("Posterior.n_active", self.n_active, low=0, high=v * h))
            if self.theta_min is not None:
                raise ValueError(f"Posterior.theta_min is soft-DEEP R's floor; DEEP R has none, got {self.theta_min!r}")
        if self.data is not None:
            x = np.asarray(self.data, dtype=np.float64)
            if x.ndim != 2 or x.shape[1] != v or x.shape[0] == 0 or not np.all((x == 0) | (x == 1)):
                raise ValueError(f"Posterior.data must be a non-empty binary array of shape (n, {v}), got shape {x.shape}")
            object.__setattr__(self, "data", x)
        object.__setattr__(self, "bias_l2", check_finite("Posterior.bias_l2", self.bias_l2))
        if self.samples_biases and not self.bias_l2 > 0:
            raise ValueError(f"Posterior.bias_l2 must be > 0 when the biases are sampled (a flat prior leaves the "
                             f"hidden biases improper, see the module docstring), got {self.bias_l2!r}")
        if (self.visible_bias is None) != (self.hidden_bias is None):
            raise ValueError("Posterior.visible_bias and hidden_bias are fixed together: give both or neither")
        for name, size in (("visible_bias", v), ("hidden_bias", h)):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != (size,) or not np.all(np.isfinite(value)):
                    raise ValueError(f"Posterior.{name} must be finite with shape ({size},), got shape {value.shape}")
                object.__setattr__(self, name, value)

    @property
    def shape(self) -> tuple[int, int]:
        return self.signs.shape

    @property
    def samples_biases(self) -> bool:
        """True when the biases are coordinates of the chain (data given, no fixed biases)."""
        return self.data is not None and self.visible_bias is None

    def fixed_biases(self) -> tuple[np.ndarray, np.ndarray]:
        v, h = self.shape
        if self.visible_bias is None:
            return np.zeros(v), np.zeros(h)
        return self.visible_bias, self.hidden_bias

    def weights(self, theta: np.ndarray) -> np.ndarray:
        """``s ⊙ theta⁺``: the weights of ``theta`` (any leading dims; NaN counts as dormant)."""
        t = np.asarray(theta, dtype=np.float64)
        return np.where(t >= 0, self.signs * t, 0.0)

    def log_density(self, theta, visible_bias=None, hidden_bias=None) -> np.ndarray:
        """Unnormalised log target ``(1/T)[lbar - alpha sum theta⁺]`` (``-inf`` off the support).

        Parameters
        ----------
        theta : ndarray, shape (n_chains, n_visible, n_hidden) or (n_visible, n_hidden)
            DEEP R's dormant entries may be any negative number or NaN.
        visible_bias, hidden_bias : ndarray, shape (n_chains, n_visible) / (n_chains, n_hidden), optional
            Needed when the biases are sampled; otherwise the fixed ones are used.

        Returns
        -------
        ndarray, shape (n_chains,)
        """
        t = np.asarray(theta, dtype=np.float64)
        t = t[None] if t.ndim == 2 else t
        lp, _, _ = self._evaluate(np.nan_to_num(t, nan=_DEEP_R_DORMANT), visible_bias, hidden_bias, gradient=False)
        return lp

    def _biases(self, n: int, visible_bias, hidden_bias):
        if self.samples_biases:
            if visible_bias is None or hidden_bias is None:
                raise ValueError("this posterior samples the biases: pass visible_bias and hidden_bias")
            return (np.broadcast_to(np.asarray(visible_bias, dtype=np.float64), (n, self.shape[0])),
                    np.broadcast_to(np.asarray(hidden_bias, dtype=np.float64), (n, self.shape[1])))
        b, c = self.fixed_biases()
        return np.broadcast_to(b, (n, b.size)), np.broadcast_to(c, (n, c.size))

    def _evaluate(self, theta, visible_bias, hidden_bias, *, gradient: bool):
        """(log target, its gradients (theta, b, c), lbar) for chains ``theta`` (C, V, H), no NaN."""
        n = theta.shape[0]
        b, c = self._biases(n, visible_bias, hidden_bias)
        active = theta >= 0
        w = np.where(active, self.signs * theta, 0.0)
        prior = self.alpha * np.where(active, theta, 0.0).sum(axis=(1, 2))
        if self.samples_biases:
            prior = prior + 0.5 * self.bias_l2 * ((b * b).sum(axis=1) + (c * c).sum(axis=1))
        g_theta = g_b = g_c = None
        if self.data is None:
            ll = np.zeros(n)
            if gradient:
                g_theta, g_b, g_c = np.zeros_like(w), np.zeros_like(b), np.zeros_like(c)
        elif gradient:
            ll, g_w, g_b, g_c = batched_gradient(self.data, w, b, c)
            g_theta = self.signs * g_w
        else:
            ll = batched_log_likelihood(self.data, w, b, c)
        lp = (ll - prior) / self.temperature
        if self.kind == "soft-deep-r":
            lp = np.where((theta >= self.theta_min).all(axis=(1, 2)), lp, -np.inf)
        else:
            lp = np.where(active.sum(axis=(1, 2)) == self.n_active, lp, -np.inf)
        if gradient:
            g_theta = np.where(active, (g_theta - self.alpha) / self.temperature, 0.0)
            if self.samples_biases:
                g_b, g_c = g_b - self.bias_l2 * b, g_c - self.bias_l2 * c
            g_b, g_c = g_b / self.temperature, g_c / self.temperature
        return lp, (g_theta, g_b, g_c), ll

    def prior_draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of ``theta`` from the prior-only law (digest B.7), shape (n, n_visible, n_hidden).

        soft-DEEP R: independent pairs, active with probability
        :func:`dilution.deep_r.inclusion_probability`, active ``theta ~ Exp(alpha/T)``, dormant
        ``U[theta_min, 0)``. DEEP R: a uniform size-``K`` mask, active ``theta ~ Exp(alpha/T)``,
        dormant NaN.
        """
        v, h = self.shape
        scale = self.temperature / self.alpha
        magnitude = rng.exponential(scale, size=(n, v, h))
        if self.kind == "soft-deep-r":
            p_on = scale / (scale + abs(self.theta_min))
            on = rng.random((n, v, h)) < p_on
            return np.where(on, magnitude, self.theta_min * rng.random((n, v, h)))
        keys = rng.random((n, v * h))
        on = np.zeros((n, v * h), dtype=bool)
        np.put_along_axis(on, np.argsort(keys, axis=1)[:, : self.n_active], True, axis=1)
        return np.where(on.reshape(n, v, h), magnitude, np.nan)


class PosteriorDraws(NamedTuple):
    """Draws of :func:`sample_posterior`, in the layout of the batched rewiring kernels.

    Attributes
    ----------
    masks : ndarray of bool, shape (replica, record, n_visible, n_hidden)
    theta : ndarray, shape (replica, record, n_visible, n_hidden)
        NaN on DEEP R's dormant pairs.
    weights : ndarray, shape (replica, record, n_visible, n_hidden)
    visible_bias : ndarray, shape (replica, record, n_visible)
    hidden_bias : ndarray, shape (replica, record, n_hidden)
    log_likelihood : ndarray, shape (replica, record)
        Exact mean log-likelihood of the data (nats per sample; 0 without data).
    acceptance : ndarray, shape (replica,)
        MALA acceptance rate over the recorded iterations.
    swap_acceptance : ndarray, shape (replica,)
        Acceptance rate of the swap moves (over iterations where one was possible).
    step_size : ndarray, shape (replica,)
        The frozen MALA step (multiplies the preconditioner).
    diagnostics : xarray.Dataset
        Split R-hat and effective sample size of the mean log-likelihood, the active count and
        every inclusion indicator and weight (:func:`analysis.stationary.split_rhat`,
        :func:`analysis.stationary.effective_sample_size`).
    """

    masks: np.ndarray
    theta: np.ndarray
    weights: np.ndarray
    visible_bias: np.ndarray
    hidden_bias: np.ndarray
    log_likelihood: np.ndarray
    acceptance: np.ndarray
    swap_acceptance: np.ndarray
    step_size: np.ndarray
    diagnostics: xr.Dataset

    def to_dataset(self) -> xr.Dataset:
        """The draws as a labelled Dataset (dims replica, record, visible, hidden), diagnostics merged.

        ``masks`` is stored as int8 0/1 (netCDF has no boolean type); the attrs are the
        diagnostics' provenance, so the reference regenerates figures without the sampler.
        """
        cell = ("replica", "record", "visible", "hidden")
        ds = xr.Dataset(
            {
                "masks": (cell, self.masks.astype(np.int8), {"long_name": "connection active (1) or dormant (0)",
                                                             "units": "1"}),
                "theta": (cell, self.theta, {"long_name": "rewiring parameter theta (NaN: DEEP R dormant)",
                                             "units": "weight units"}),
                "weights": (cell, self.weights, {"long_name": "effective weight s theta on active pairs",
                                                 "units": "weight units"}),
                "visible_bias": (("replica", "record", "visible"), self.visible_bias,
                                 {"long_name": "visible bias", "units": "weight units"}),
                "hidden_bias": (("replica", "record", "hidden"), self.hidden_bias,
                                {"long_name": "hidden bias", "units": "weight units"}),
                "log_likelihood": (("replica", "record"), self.log_likelihood,
                                   {"long_name": "exact mean log-likelihood of the data", "units": "nats per sample"}),
                "step_size": ("replica", self.step_size, {"long_name": "frozen MALA step (times the preconditioner)",
                                                          "units": "1"}),
            },
            coords={"record": ("record", np.arange(self.masks.shape[1]), {"long_name": "recorded draw", "units": "1"})},
        )
        ds.attrs.update(self.diagnostics.attrs)
        return xr.merge([ds, self.diagnostics], combine_attrs="override")


def _log_fold(y, mu, sigma, lower):
    """log density at ``y`` of N(mu, sigma²) folded at ``lower`` (``-inf``: no fold)."""
    z = (y - mu) / sigma
    out = -0.5 * z * z - np.log(sigma) - 0.5 * math.log(2 * math.pi)
    folded = np.isfinite(lower)
    if np.any(folded):
        lo = np.where(folded, lower, 0.0)
        z2 = (2 * lo - y - mu) / sigma
        out = np.where(folded, np.logaddexp(out, -0.5 * z2 * z2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)), out)
    return out


class _Chains:
    """Lockstep chain state: flat coordinates (C, P) = [theta.ravel(), b, c] with cached lp and gradient."""

    def __init__(self, post: Posterior, theta, b, c):
        self.post = post
        v, h = post.shape
        self.d = v * h
        self.x = np.concatenate([theta.reshape(len(theta), -1), b, c], axis=1)
        lower = np.full(self.x.shape[1], -np.inf)
        lower[: self.d] = post.theta_min if post.kind == "soft-deep-r" else 0.0
        self.lower = lower
        self.lp, self.grad, self.ll = self.evaluate(self.x)

    def split(self, x):
        v, h = self.post.shape
        n = len(x)
        return x[:, : self.d].reshape(n, v, h), x[:, self.d: self.d + v], x[:, self.d + v:]

    def evaluate(self, x):
        theta, b, c = self.split(x)
        lp, (g_t, g_b, g_c), ll = self.post._evaluate(theta, b, c, gradient=True)
        return lp, np.concatenate([g_t.reshape(len(x), -1), g_b, g_c], axis=1), ll

    def movable(self, x):
        m = np.ones_like(x, dtype=bool)
        if self.post.kind == "deep-r":
            m[:, : self.d] = x[:, : self.d] >= 0
        if not self.post.samples_biases:
            m[:, self.d:] = False
        return m

    def mala(self, eps, scale, rng):
        sigma = eps[:, None] * scale[None, :]
        move = self.movable(self.x)
        mu = self.x + 0.5 * sigma**2 * self.grad
        y = mu + sigma * rng.standard_normal(self.x.shape)
        folded = np.isfinite(self.lower)
        lo = np.where(folded, self.lower, 0.0)
        y = np.where(folded, lo + np.abs(y - lo), y)
        y = np.where(move, y, self.x)
        lp_y, grad_y, ll_y = self.evaluate(y)
        mu_rev = y + 0.5 * sigma**2 * grad_y
        fwd = np.where(move, _log_fold(y, mu, sigma, self.lower), 0.0).sum(axis=1)
        rev = np.where(move, _log_fold(self.x, mu_rev, sigma, self.lower), 0.0).sum(axis=1)
        with np.errstate(invalid="ignore"):
            log_ratio = lp_y - self.lp + rev - fwd
        accept = np.log(rng.random(len(y))) < np.nan_to_num(log_ratio, nan=-np.inf)
        self._take(accept, y, lp_y, grad_y, ll_y)
        return accept

    def swap(self, rng):
        theta = self.x[:, : self.d]
        active = theta >= 0
        n_on = active.sum(axis=1)
        possible = (n_on > 0) & (n_on < self.d)
        pick_on = np.argmax(np.cumsum(active, axis=1) > np.floor(rng.random(len(theta)) * n_on)[:, None], axis=1)
        pick_off = np.argmax(np.cumsum(~active, axis=1) > np.floor(rng.random(len(theta)) * (self.d - n_on))[:, None],
                             axis=1)
        y = self.x.copy()
        rows = np.arange(len(y))
        y[rows, pick_on], y[rows, pick_off] = self.x[rows, pick_off], self.x[rows, pick_on]
        y[~possible] = self.x[~possible]
        lp_y, grad_y, ll_y = self.evaluate(y)
        accept = possible & (np.log(rng.random(len(y))) < lp_y - self.lp)
        self._take(accept, y, lp_y, grad_y, ll_y)
        return accept, possible

    def _take(self, accept, y, lp_y, grad_y, ll_y):
        self.x[accept] = y[accept]
        self.lp[accept] = lp_y[accept]
        self.grad[accept] = grad_y[accept]
        self.ll[accept] = ll_y[accept]


def _initial_state(post: Posterior, n: int, rng: np.random.Generator):
    theta = np.nan_to_num(post.prior_draw(n, rng), nan=_DEEP_R_DORMANT)
    v, h = post.shape
    if post.samples_biases:
        marginal = np.clip(post.data.mean(axis=0), 0.05, 0.95)
        b = np.log(marginal / (1 - marginal))[None, :] + 0.5 * rng.standard_normal((n, v))
        c = 0.5 * rng.standard_normal((n, h))
    else:
        fb, fc = post.fixed_biases()
        b, c = np.tile(fb, (n, 1)), np.tile(fc, (n, 1))
    return theta, b, c


def _preconditioner(samples: np.ndarray, d: int, fallback: np.ndarray) -> np.ndarray:
    """Per-coordinate proposal scale: one pooled std for all theta (their identity changes under
    swaps), the std of each bias; the prior-based fallback where there is no spread."""
    scale = fallback.copy()
    t = samples[:, :, :d]
    t = t[t >= 0]
    if t.size > 1 and t.std() > 0:
        scale[:d] = t.std()
    bias_std = samples[:, :, d:].reshape(-1, samples.shape[2] - d).std(axis=0)
    scale[d:] = np.where(bias_std > 0, bias_std, fallback[d:])
    return scale


def sample_posterior(
    posterior: Posterior,
    *,
    n_chains: int = 16,
    n_draws: int = 1000,
    thin: int = 1,
    n_warmup: int = 1000,
    seed: int,
) -> PosteriorDraws:
    """Sample the reference posterior by MALA with folding bounds plus swap moves (module docstring).

    Parameters
    ----------
    posterior : Posterior
    n_chains : int
        Chains run in lockstep, started from independent prior draws (different masks).
    n_draws : int
        Recorded draws per chain.
    thin : int
        Iterations (one MALA step and one swap) between recorded draws.
    n_warmup : int
        Adaptation iterations, discarded (>= 20).
    seed : int
        All draws come from ``derive_seed(seed, "posterior-mala")``.

    Returns
    -------
    PosteriorDraws
    """
    if not isinstance(posterior, Posterior):
        raise TypeError(f"posterior must be an analysis.posterior.Posterior, got {type(posterior).__name__}")
    n_chains = check_int("n_chains", n_chains, low=2)
    n_draws = check_int("n_draws", n_draws, low=4)
    thin = check_int("thin", thin, low=1)
    n_warmup = check_int("n_warmup", n_warmup, low=20)
    rng = np.random.default_rng(derive_seed(check_seed(seed), "posterior-mala"))
    chains = _Chains(posterior, *_initial_state(posterior, n_chains, rng))
    d, p = chains.d, chains.x.shape[1]
    scale = np.full(p, 1.0)
    scale[:d] = posterior.temperature / posterior.alpha
    log_eps = np.full(n_chains, math.log(0.5))
    half = n_warmup // 2
    history = np.empty((n_warmup - half, n_chains, p))
    for t in range(n_warmup):
        accept = chains.mala(np.exp(log_eps), scale, rng)
        chains.swap(rng)
        # Robbins-Monro on log step size; restarted when the preconditioner changes at mid warm-up.
        t_adapt = t if t < half else t - half
        log_eps += (accept - _TARGET_ACCEPTANCE) / (t_adapt + 10) ** 0.6
        if t >= half:
            history[t - half] = chains.x
        if t == half - 1:
            scale = _preconditioner(chains.x[None], d, scale)
    scale = _preconditioner(history, d, scale)
    # A short re-adaptation under the final preconditioner; the recorded chain then uses frozen steps.
    for t in range(max(20, n_warmup // 4)):
        accept = chains.mala(np.exp(log_eps), scale, rng)
        chains.swap(rng)
        log_eps += (accept - _TARGET_ACCEPTANCE) / (t + 10) ** 0.6
    eps = np.exp(log_eps)
    v, h = posterior.shape
    xs = np.empty((n_chains, n_draws, p))
    lls = np.empty((n_chains, n_draws))
    n_acc = np.zeros(n_chains)
    n_swap = np.zeros(n_chains)
    n_swap_possible = np.zeros(n_chains)
    for r in range(n_draws):
        for _ in range(thin):
            n_acc += chains.mala(eps, scale, rng)
            acc, possible = chains.swap(rng)
            n_swap += acc
            n_swap_possible += possible
        xs[:, r] = chains.x
        lls[:, r] = chains.ll
    theta = xs[:, :, :d].reshape(n_chains, n_draws, v, h)
    masks = theta >= 0
    if posterior.kind == "deep-r":
        theta = np.where(masks, theta, np.nan)
    weights = np.where(masks, posterior.signs * np.nan_to_num(theta), 0.0)
    draws = dict(
        masks=masks,
        theta=theta,
        weights=weights,
        visible_bias=xs[:, :, d: d + v],
        hidden_bias=xs[:, :, d + v:],
        log_likelihood=lls,
        acceptance=n_acc / (n_draws * thin),
        swap_acceptance=np.where(n_swap_possible > 0, n_swap / np.maximum(n_swap_possible, 1), np.nan),
        step_size=eps,
    )
    draws["diagnostics"] = _diagnostics(posterior, draws, seed=seed, n_warmup=n_warmup, thin=thin)
    return PosteriorDraws(**draws)


def _diagnostics(post: Posterior, draws: dict, **attrs) -> xr.Dataset:
    masks, weights = draws["masks"], draws["weights"]
    v, h = post.shape
    n_active = masks.sum(axis=(2, 3)).astype(np.float64)

    def per_pair(fn, x):
        return np.array([[fn(x[:, :, i, j]) for j in range(h)] for i in range(v)])

    scalar = {"long_name": "", "units": "1"}
    out = {}
    for name, trace, what in (("log_likelihood", draws["log_likelihood"], "mean log-likelihood"),
                              ("n_active", n_active, "active count")):
        out[f"rhat_{name}"] = ((), split_rhat(trace), {**scalar, "long_name": f"split R-hat of the {what}"})
        out[f"ess_{name}"] = ((), effective_sample_size(trace), {**scalar, "long_name": f"effective sample size of the {what}"})
    pair = ("visible", "hidden")
    out["rhat_inclusion"] = (pair, per_pair(split_rhat, masks.astype(np.float64)),
                             {"long_name": "split R-hat of each inclusion indicator", "units": "1"})
    out["ess_inclusion"] = (pair, per_pair(effective_sample_size, masks.astype(np.float64)),
                            {"long_name": "effective sample size of each inclusion indicator", "units": "1"})
    out["rhat_weight"] = (pair, per_pair(split_rhat, weights),
                          {"long_name": "split R-hat of each weight", "units": "1"})
    out["ess_weight"] = (pair, per_pair(effective_sample_size, weights),
                         {"long_name": "effective sample size of each weight", "units": "1"})
    out["acceptance"] = ("replica", draws["acceptance"], {"long_name": "MALA acceptance rate", "units": "1"})
    out["swap_acceptance"] = ("replica", draws["swap_acceptance"],
                              {"long_name": "acceptance rate of active-dormant swaps", "units": "1"})
    coords = {
        "visible": ("visible", np.arange(v), {"long_name": "visible unit", "units": "1"}),
        "hidden": ("hidden", np.arange(h), {"long_name": "hidden unit", "units": "1"}),
        "replica": ("replica", np.arange(masks.shape[0]), {"long_name": "chain", "units": "1"}),
    }
    ds = xr.Dataset(out, coords=coords)
    ds.attrs.update(provenance(sampler="MALA with folded bounds and active-dormant swaps", kind=post.kind,
                               alpha=post.alpha, temperature=post.temperature,
                               theta_min=post.theta_min if post.theta_min is not None else "none",
                               n_active_budget=post.n_active if post.n_active is not None else "none",
                               n_data=0 if post.data is None else int(post.data.shape[0]),
                               biases="sampled" if post.samples_biases else "fixed",
                               bias_l2=post.bias_l2 if post.samples_biases else "none", **attrs))
    return ds


class ProfileFit(NamedTuple):
    """Maximum of the mean log-likelihood over the weights on one mask and the biases.

    Attributes
    ----------
    log_likelihood : float
        ``max lbar`` in nats per sample.
    weights : ndarray, shape (n_visible, n_hidden)
        Zero off the mask.
    visible_bias : ndarray, shape (n_visible,)
    hidden_bias : ndarray, shape (n_hidden,)
    """

    log_likelihood: float
    weights: np.ndarray
    visible_bias: np.ndarray
    hidden_bias: np.ndarray


def _check_data(data, n_visible: int) -> np.ndarray:
    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_visible or x.shape[0] == 0 or not np.all((x == 0) | (x == 1)):
        raise ValueError(f"data must be a non-empty binary array of shape (n, {n_visible}), got shape {x.shape}")
    return x


def profile_log_likelihood(data, mask, *, signs=None, n_restarts: int = 4, seed: int, init_scale: float = 0.5) -> ProfileFit:
    """Profile likelihood ``max_{W on M, b, c} lbar`` of one mask by L-BFGS-B with random restarts.

    Parameters
    ----------
    data : ndarray, shape (n, n_visible)
    mask : ndarray of bool, shape (n_visible, n_hidden)
    signs : ndarray of ±1, shape (n_visible, n_hidden), optional
        Constrain ``s_ij W_ij >= 0`` on the mask (DEEP R parity); None leaves the weights free.
    n_restarts : int
        Starts: weights ``init_scale |N(0,1)|`` (signed by ``signs``, or ``init_scale N(0,1)``),
        biases 0; the best optimum is returned.
    seed : int
        Restarts draw from ``derive_seed(seed, "profile-restarts", code)`` with ``code`` the mask's
        code (:func:`analysis.stationary.mask_codes`), so every mask has its own stream.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must have shape (n_visible, n_hidden), got {m.shape}")
    v, h = m.shape
    if h > MAX_HIDDEN:
        raise ValueError(f"the hidden layer is enumerated: n_hidden must be <= {MAX_HIDDEN}, got {h}")
    x = _check_data(data, v)
    s = None
    if signs is not None:
        s = np.asarray(signs)
        if s.shape != m.shape or not np.all((s == 1) | (s == -1)):
            raise ValueError(f"signs must be ±1 with the mask's shape {m.shape}, got shape {s.shape}")
    n_restarts = check_int("n_restarts", n_restarts, low=1)
    idx = np.flatnonzero(m)
    rng = np.random.default_rng(derive_seed(check_seed(seed), "profile-restarts", sum(1 << int(i) for i in idx)))
    k = idx.size
    direction = s.ravel()[idx].astype(np.float64) if s is not None else np.ones(k)

    def unpack(z):
        w = np.zeros(v * h)
        w[idx] = direction * z[:k]
        return w.reshape(v, h), z[k: k + v], z[k + v:]

    def objective(z):
        w, b, c = unpack(z)
        ll, gw, gb, gc = batched_gradient(x, w, b, c)
        return -ll[0], -np.concatenate([direction * gw[0].ravel()[idx], gb[0], gc[0]])

    bounds = [(0.0, None) if s is not None else (None, None)] * k + [(None, None)] * (v + h)
    best = None
    for _ in range(n_restarts):
        start = rng.standard_normal(k) * init_scale
        z0 = np.concatenate([np.abs(start) if s is not None else start, np.zeros(v + h)])
        res = minimize(objective, z0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 2000, "gtol": 1e-9})
        if best is None or res.fun < best.fun:
            best = res
    w, b, c = unpack(best.x)
    return ProfileFit(float(-best.fun), w, b, c)


def mask_profiles(data, shape: tuple[int, int], *, signs=None, sizes=None, n_restarts: int = 4, seed: int) -> xr.Dataset:
    """Profile likelihood of every mask (or every mask of the given sizes) and the oracle mask per size.

    Parameters
    ----------
    data : ndarray, shape (n, n_visible)
    shape : (n_visible, n_hidden)
        At most 20 pairs when all sizes are enumerated.
    signs : ndarray, shape (n_visible, n_hidden), optional
        Sign constraint (:func:`profile_log_likelihood`).
    sizes : sequence of int, optional
        Only masks with these active counts (all sizes if None).
    n_restarts, seed
        As :func:`profile_log_likelihood`.

    Returns
    -------
    xarray.Dataset
        Dim ``mask`` (coordinate: the mask code, bit ``k`` = pair ``k`` of the row-major
        flattening, :func:`analysis.stationary.mask_codes`): ``profile_log_likelihood``,
        ``n_active``. Dim ``size``: ``oracle_mask`` (code of the best mask of that size),
        ``oracle_log_likelihood``, ``n_masks``.
    """
    v = check_int("shape[0] (n_visible)", shape[0], low=1)
    h = check_int("shape[1] (n_hidden)", shape[1], low=1)
    d = v * h
    seed = check_seed(seed)
    if sizes is None:
        if d > 20:
            raise ValueError(f"all 2**{d} masks of a {v} x {h} RBM are too many to profile; give sizes=[K, ...]")
        codes = np.arange(2**d, dtype=np.int64)
    else:
        sizes = sorted({check_int("sizes", k, low=0, high=d) for k in sizes})
        codes = np.array(sorted(sum(1 << i for i in c) for k in sizes for c in combinations(range(d), k)), dtype=np.int64)
    masks = masks_from_codes(codes, (v, h))
    values = np.array([
        profile_log_likelihood(data, m, signs=signs, n_restarts=n_restarts, seed=seed).log_likelihood for m in masks
    ])
    counts = masks.sum(axis=(1, 2))
    size_values = np.unique(counts)
    best = [int(np.flatnonzero(counts == k)[np.argmax(values[counts == k])]) for k in size_values]
    ds = xr.Dataset(
        {
            "profile_log_likelihood": ("mask", values, {"long_name": "profile mean log-likelihood of the mask",
                                                        "units": "nats per sample"}),
            "n_active": ("mask", counts.astype(np.int64), {"long_name": "active connections of the mask", "units": "1"}),
            "oracle_mask": ("size", codes[best], {"long_name": "code of the best mask of this size", "units": "1"}),
            "oracle_log_likelihood": ("size", values[best], {"long_name": "profile mean log-likelihood of the best mask",
                                                             "units": "nats per sample"}),
            "n_masks": ("size", np.array([(counts == k).sum() for k in size_values], dtype=np.int64),
                        {"long_name": "masks of this size", "units": "1"}),
        },
        coords={
            "mask": ("mask", codes, {"long_name": "mask code (bit k: row-major pair k active)", "units": "1"}),
            "size": ("size", size_values.astype(np.int64), {"long_name": "active connections", "units": "1"}),
        },
    )
    ds.attrs.update(provenance(metric="profile likelihood per mask", sign_constrained=int(signs is not None),
                               n_visible=v, n_hidden=h, n_restarts=n_restarts, seed=seed))
    return ds
