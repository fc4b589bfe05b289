"""Speed benchmarks of the dilution engine against numpy, PyTorch and rbms (``python -m benchmarks``).

Not part of the test suite; torch and rbms are optional (the ``bench`` extra) and skipped when
absent.
"""
