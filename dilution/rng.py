"""Counter-based random streams: one independent stream per Markov chain.

Draw ``n`` of the stream with key ``k`` is ``mix64(k + GOLDEN * (n + 1))``: random access into
a SplitMix64 sequence (Steele, Lea & Flood 2014), whose output function passes BigCrush.
Because a draw is a pure function of (chain key, draw index), a kernel gives the same numbers
whatever the number of threads and however the chains are split among them.

Chain keys come from ``numpy.random.SeedSequence(seed)``, so one integer seed fixes every
stream, and distinct seeds or chain indices give unrelated keys.
"""

from __future__ import annotations

import hashlib

import numpy as np
from numba import njit

from .validation import check_seed

__all__ = ["GOLDEN", "chain_keys", "mix64", "uniform64", "uniform32", "derive_seed"]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_S40 = np.uint64(40)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_INV24 = np.float32(1.0 / 16777216.0)  # 2**-24


@njit(inline="always", cache=True)
def mix64(z):
    """SplitMix64 output function: a bijective 64-bit avalanche mix."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always", cache=True)
def uniform64(key, index):
    """Uniform float64 in [0, 1) with 53 random bits: draw ``index`` of stream ``key``."""
    return np.float64(mix64(key + GOLDEN * (index + np.uint64(1))) >> _S11) * _INV53


@njit(inline="always", cache=True)
def uniform32(key, index):
    """Uniform float32 in [0, 1) with 24 random bits: draw ``index`` of stream ``key``."""
    return np.float32(mix64(key + GOLDEN * (index + np.uint64(1))) >> _S40) * _INV24


def chain_keys(seed: int | np.random.SeedSequence, n_chains: int) -> np.ndarray:
    """Keys of ``n_chains`` independent streams derived from one seed.

    Returns
    -------
    keys : ndarray of uint64, shape (n_chains,)
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(check_seed(seed))
    return ss.generate_state(n_chains, dtype=np.uint64)


def derive_seed(seed: int, *path: int | str) -> np.random.SeedSequence:
    """A child seed for one named purpose (e.g. ``derive_seed(seed, "pcd-chains")``).

    The path is encoded without ambiguity (a type tag and a length before every part) and
    hashed with BLAKE2b into four 32-bit words, followed by the user seed's word count and
    words, as the entropy of a ``SeedSequence``. Distinct paths therefore give distinct, statistically
    independent streams: ``("teacher-sample",)`` and ``("teacher-entropy",)`` differ, and so do
    ``("shuffle",)`` and ``("shuffle", 0)``.
    """
    seed = check_seed(seed)
    h = hashlib.blake2b(digest_size=16, person=b"dilution-seed")
    for p in path:
        if isinstance(p, str):
            raw, tag = p.encode("utf-8"), b"s"
        elif isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)):
            raw, tag = str(int(p)).encode("ascii"), b"i"
        else:
            raise TypeError(f"seed path parts must be str or int, got {p!r}")
        h.update(tag + len(raw).to_bytes(8, "little") + raw)
    digest = h.digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    seed_words = [(seed >> s) & 0xFFFFFFFF for s in range(0, max(seed.bit_length(), 1), 32)]
    # Every entry is one 32-bit word and the seed's length is written out, so no two
    # (seed, path) pairs give the same entropy (SeedSequence pads short entropy with zeros).
    return np.random.SeedSequence(words + [len(seed_words)] + seed_words)
