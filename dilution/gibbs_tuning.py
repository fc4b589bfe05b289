"""Measured constants of the Gibbs paths: which path runs, and how chains are split into blocks.

Measured on a 2-core Sapphire Rapids guest (``benchmarks/``, README "Which sampling path runs
when" and "Speed"); re-measure them on other hardware. None depends on the thread count, so
neither do the samples.
"""

from __future__ import annotations

__all__ = [
    "DENSE_BLOCK",
    "DENSE_MIN_BLOCKS",
    "DENSE_MIN_BLOCK",
    "SPARSE_BLOCK",
    "GATHER_BELOW",
    "GEMM_MIN_ROWS",
    "SPARSE_BELOW",
    "SPARSE_MIN_CHAINS",
]

DENSE_BLOCK = 128  # most chains per dense block. GEMM wants many rows (numpy's single-threaded SGEMM
#   at 784 x 500: 64 rows 0.65x, 256 rows 0.8-0.95x the 2-thread full-batch GEMM); the gather wants
#   few, to keep the block's states beside W and W^T in L2 (64 rows 1.29x, 256 rows 1.03x the GEMM
#   bound at B = 1000 on CD25's chains). 128 was the best compromise on trained MNIST models.
DENSE_MIN_BLOCKS = 4  # batches of >= 4 * DENSE_MIN_BLOCK chains are split in at least 4 blocks, so up
DENSE_MIN_BLOCK = 4  # to 4 threads share them (B = 16: 4 blocks of 4, B = 100: 4 of 25, B = 1000: 8 of 125)
SPARSE_BLOCK = 64  # chains per sparse block: 4 (float32) or 8 (float64) 512-bit vectors per row update; measured 2x faster than 16
# Fraction of active units under which summing their weight rows beats a GEMM, by itemsize:
# measured at 784 x 500 per 64-chain block (float32: crossover 0.28-0.34; float64: 0.2-0.21,
# where W no longer fits in L2).
GATHER_BELOW = {4: 0.3, 8: 0.2}
# Blocks of fewer chains always gather: OpenBLAS packs all of W for every GEMM call, which a few
# rows cannot amortise (B = 1, float64, 784 x 500: 4.7k chain-sweeps/s with a one-row DGEMM for
# the 30 %-active hidden layer against 12.9k gathering its rows).
GEMM_MIN_ROWS = 32
SPARSE_BELOW = 0.15  # connectivity under which the CSR path beats the dense one: at B = 1000 on CD25, sparse/dense =
#   2.25 (c = 0.05), 1.33 (0.1), 0.69 (0.2) in float32 and 2.33, 1.54, 0.75 in float64
SPARSE_MIN_CHAINS = 32  # fewer chains leave the sparse block's SIMD lanes empty: 10k vs ~25k sweeps/s at B = 1
PRESENT_GRADIENT_BELOW = 0.015  # mask density under which the present-pairs gradient kernel (hidden units
#   gathered by index) beats the dense one over every pair (SIMD over 500): DEEP R update at 784 x 500,
#   PCD-10, float32, one thread (python -m benchmarks --only rewiring): 1.12x at 1 %, 1.00x at 2 %, 0.97x at 5 %
