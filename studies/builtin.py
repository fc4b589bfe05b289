"""Built-in study specs, runnable by name: ``dilution study run smoke``."""

from __future__ import annotations

from .spec import StudySpec, spec_from_toml

__all__ = ["BUILTIN", "builtin_spec"]

# Planted teacher 16 x 4, students 16 x 6: exact likelihood everywhere, well under a minute.
_SMOKE = """
name = "smoke"
output = "runs/study-smoke"
n_hidden = [6]
pruning_fractions = [0.0, 0.5, 0.8]
seeds = [0, 1]

[data]
kind = "teacher"
n_visible = 16
n_hidden = 4
weight_scale = 2.0
seed = 0
n_train = 500
n_validation = 500
n_test = 1000

# The exact gradient (6 hidden units enumerate at once): smooth held-out curves, so the
# stopping rule is tested on learning, not on PCD noise.
[training]
estimator = "exact"
batch_size = 100
learning_rate = 0.1
momentum = 0.9
weight_scale = 0.3
max_epochs = 60

[stopping]
every = 2
window = 4
tolerance = 0.01
min_epochs = 30

[evaluation]
log_likelihood = "exact"

[protocols.init]
kind = "init"

[protocols.after]
kind = "after"
epoch = 20
"""

BUILTIN = {"smoke": _SMOKE}


def builtin_spec(name: str, *, output: str | None = None) -> StudySpec:
    """A built-in spec by name (its relative output folder is relative to the current folder)."""
    if name not in BUILTIN:
        raise KeyError(f"no built-in study {name!r}; built-in studies: {', '.join(sorted(BUILTIN))}")
    text = BUILTIN[name]
    if output is not None:
        text = text.replace('output = "runs/study-smoke"', f"output = {output!r}".replace("'", '"'))
    return spec_from_toml(text)
