"""The contenders of the benchmark: each is ``run(n_sweeps)`` on a fixed model and batch."""

from __future__ import annotations

import os
import typing

import numpy as np
import scipy.io

from dilution import RBM, gibbs
from dilution.model import random_mask
from dilution.rng import chain_keys

try:
    import torch

    torch.set_num_threads(int(os.environ.get("DILUTION_BENCH_THREADS", "2")))
except ImportError:
    torch = None

try:
    if not hasattr(typing, "override"):  # rbms 0.6.0 needs Python 3.12's typing.override
        typing.override = lambda f: f
    from rbms.bernoulli_bernoulli.classes import BBRBM
except Exception:  # noqa: BLE001 - any import failure means "not installed"
    BBRBM = None

MODELS = os.environ.get("DILUTION_MODELS", "../shared/models")


def cd25(dtype: str, connectivity: float) -> RBM:
    """Salakhutdinov's CD25 MNIST RBM (784 x 500), optionally diluted by a seeded random mask."""
    m = scipy.io.loadmat(os.path.join(MODELS, "mnistvh_CD25.mat"))
    w = m["vishid"].astype(dtype)
    mask = None if connectivity == 1.0 else random_mask(w.shape, connectivity, np.random.default_rng(0))
    return RBM(w, m["visbiases"].ravel().astype(dtype), m["hidbiases"].ravel().astype(dtype), mask)


def mnist_binary(path: str) -> np.ndarray:
    x = np.load(path)["x_train"].reshape(60000, 784)
    rng = np.random.default_rng(0)
    return (x[rng.permutation(60000)] > 127).astype(np.float32)


def gibbs_contenders(rbm: RBM, n_chains: int, *, with_dense: bool):
    dt = rbm.dtype
    rng = np.random.default_rng(1)
    v0 = (rng.random((n_chains, rbm.n_visible)) < 0.15).astype(dt)
    w, wt = rbm.weights, np.ascontiguousarray(rbm.weights.T)
    a, b = rbm.visible_bias, rbm.hidden_bias
    args = (w, wt, a, b, np.ones(n_chains, dt), np.zeros(rbm.n_visible, dt), chain_keys(0, n_chains))
    # warm states: chains after a few sweeps have the model's activity, not the initial one
    v0 = gibbs.gibbs_kernel(v0, *args, np.uint64(0), 20)[0]
    out = {}

    def engine(n):
        gibbs.gibbs_kernel(v0, *args, np.uint64(0), n)

    out["engine"] = engine
    if not with_dense and gibbs.gibbs_path(w, n_chains) != "blocked":

        def engine_dense(n):  # the engine's dense path on the same diluted model
            gibbs.gibbs_kernel(v0, *args, np.uint64(0), n, path="blocked")

        out["engine_dense"] = engine_dense

    def numpy_ref(n):
        v = v0
        for _ in range(n):
            h = (rng.random((n_chains, rbm.n_hidden), dtype=dt) < 1 / (1 + np.exp(-(v @ w + b)))).astype(dt)
            v = (rng.random((n_chains, rbm.n_visible), dtype=dt) < 1 / (1 + np.exp(-(h @ wt + a)))).astype(dt)

    out["numpy"] = numpy_ref

    def gemm_only(n):
        h = np.zeros((n_chains, rbm.n_hidden), dt)
        for _ in range(n):
            v0 @ w
            h @ wt

    if with_dense:
        out["gemm_only"] = gemm_only
    if torch is not None:
        tw, tb, ta = (torch.from_numpy(np.array(x)) for x in (w, b, a))
        tv = torch.from_numpy(v0.copy())

        @torch.no_grad()
        def torch_rand(n):
            v = tv
            for _ in range(n):
                h = (torch.rand(n_chains, rbm.n_hidden, dtype=tw.dtype) < torch.sigmoid(v @ tw + tb)).to(tw.dtype)
                v = (torch.rand(n_chains, rbm.n_visible, dtype=tw.dtype) < torch.sigmoid(h @ tw.T + ta)).to(tw.dtype)

        out["torch"] = torch_rand
        if not with_dense:
            sw = tw.T.contiguous().to_sparse_csr()  # (n_h, n_v): h-field = sw @ v^T
            swt = tw.contiguous().to_sparse_csr()

            @torch.no_grad()
            def torch_csr(n):
                v = tv
                for _ in range(n):
                    fh = (sw @ v.T).T + tb
                    h = (torch.rand(n_chains, rbm.n_hidden, dtype=tw.dtype) < torch.sigmoid(fh)).to(tw.dtype)
                    fv = (swt @ h.T).T + ta
                    v = (torch.rand(n_chains, rbm.n_visible, dtype=tw.dtype) < torch.sigmoid(fv)).to(tw.dtype)

            out["torch_csr"] = torch_csr
        if BBRBM is not None and with_dense:
            from rbms.bernoulli_bernoulli.functional import sample_hiddens, sample_visibles

            params = BBRBM(tw.clone(), ta.clone(), tb.clone())

            @torch.no_grad()
            def rbms_ref(n):
                chains = {"visible": tv.clone()}
                for _ in range(n):
                    chains = sample_hiddens(chains, params)
                    chains = sample_visibles(chains, params)

            out["rbms"] = rbms_ref
    return out


@torch.no_grad() if torch is not None else (lambda f: f)
def torch_pcd_epoch(data: np.ndarray, *, n_chains: int, k: int, lr: float = 0.01, batch: int = 100):
    """The tuned torch reference training loop: PCD-k, persistent chains, plain SGD."""
    x = torch.from_numpy(data)
    n_v, n_h = x.shape[1], 500
    g = torch.Generator().manual_seed(0)
    w = 0.01 * torch.randn(n_v, n_h, generator=g)
    a = torch.zeros(n_v)
    b = torch.zeros(n_h)
    v = (torch.rand(n_chains, n_v, generator=g) < 0.5).float()
    for s in range(0, x.shape[0], batch):
        d = x[s : s + batch]
        ph = torch.sigmoid(d @ w + b)
        for _ in range(k):
            h = (torch.rand(n_chains, n_h) < torch.sigmoid(v @ w + b)).float()
            v = (torch.rand(n_chains, n_v) < torch.sigmoid(h @ w.T + a)).float()
        pm = torch.sigmoid(v @ w + b)
        w += lr * (d.T @ ph / d.shape[0] - v.T @ pm / n_chains)
        a += lr * (d.mean(0) - v.mean(0))
        b += lr * (ph.mean(0) - pm.mean(0))


def rbms_pcd_epoch(data: np.ndarray, *, n_chains: int, k: int, lr: float = 0.01, batch: int = 100):
    """The body of ``rbms.training.pcd.train`` (0.6.0): chains initialised from the batch,
    ``k`` sweeps of ``sample_hiddens``/``sample_visibles`` on the persistent chains, the
    package's centred gradient, then a plain SGD step (tqdm and h5 checkpoints left out)."""
    from rbms.bernoulli_bernoulli.functional import sample_hiddens, sample_visibles

    x = torch.from_numpy(data)
    g = torch.Generator().manual_seed(0)
    params = BBRBM(0.01 * torch.randn(x.shape[1], 500, generator=g), torch.zeros(x.shape[1]), torch.zeros(500))
    for p in params.parameters():
        p.requires_grad_(False)
        p.grad = torch.zeros_like(p)
    chains = params.init_chains(n_chains, start_v=(torch.rand(n_chains, x.shape[1], generator=g) < 0.5).float())
    for s in range(0, x.shape[0], batch):
        d = params.init_chains(batch, start_v=x[s : s + batch])
        for _ in range(k):
            chains = sample_hiddens(chains, params)
            chains = sample_visibles(chains, params)
        chains = sample_hiddens(chains, params)
        params.compute_gradient(d, chains, centered=True)
        with torch.no_grad():
            for p in params.parameters():
                p += lr * p.grad
