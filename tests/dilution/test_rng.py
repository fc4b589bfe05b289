"""Seed derivation: every purpose used in the package draws from its own stream."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from dilution.rng import chain_keys, derive_seed

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dilution", "analysis", "studies")


def _purposes() -> set[tuple]:
    """Every ``derive_seed(seed, ...)`` path written in the package sources.

    String literals are kept; any other argument (an epoch, a step, a subset name held in a
    variable) stands for a run-time value and is replaced by a marker, because the test asks
    whether the *named* purposes collide.
    """
    found = set()
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == (
                    "derive_seed"
                ):
                    parts = tuple(
                        a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else "<runtime>"
                        for a in node.args[1:]
                    )
                    found.add(parts)
    return found


def test_the_package_uses_many_purposes():
    # Guards the collector itself: if the AST walk broke, the distinctness test would pass on nothing.
    purposes = _purposes()
    assert ("teacher-sample",) in purposes and ("teacher-entropy",) in purposes
    assert len(purposes) >= 20


def test_every_purpose_in_the_package_has_its_own_stream():
    paths = []
    for parts in _purposes():
        # Run-time parts take two different values so that e.g. ("shuffle", epoch) is tested at two epochs.
        for value in (0, 1):
            paths.append(tuple(value if p == "<runtime>" else p for p in parts))
    states = {}
    for path in set(paths):
        state = tuple(derive_seed(7, *path).generate_state(4, dtype=np.uint64))
        assert state not in states, f"{path} and {states[state]} share a random stream"
        states[state] = path


@pytest.mark.parametrize(
    "a, b",
    [
        # Shared 8-byte prefixes: the old derivation kept only the first 8 bytes of a string.
        (("teacher-sample",), ("teacher-entropy",)),
        (("tempering-init",), ("tempering",)),
        (("estimate-gradient",), ("estimate-other",)),
        # Shorter paths and trailing zeros: SeedSequence pads its entropy with zeros.
        (("shuffle",), ("shuffle", 0)),
        (("connectivity", 1), ("connectivity", 1, 0)),
        # A string that spells an integer is not that integer.
        (("x", 1), ("x", "1")),
        # Concatenation is not ambiguous.
        (("ab", "c"), ("a", "bc")),
    ],
)
def test_distinct_paths_give_distinct_streams(a, b):
    assert not np.array_equal(chain_keys(derive_seed(3, *a), 8), chain_keys(derive_seed(3, *b), 8))


def test_derivation_is_a_pure_function_of_seed_and_path():
    assert np.array_equal(chain_keys(derive_seed(5, "pcd", 2), 16), chain_keys(derive_seed(5, "pcd", 2), 16))
    assert not np.array_equal(chain_keys(derive_seed(5, "pcd"), 16), chain_keys(derive_seed(6, "pcd"), 16))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_bad_seeds_are_refused(bad):
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        derive_seed(bad, "x")


def test_path_parts_must_be_str_or_int():
    with pytest.raises(TypeError, match="str or int"):
        derive_seed(0, 1.5)
