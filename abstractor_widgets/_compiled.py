"""Compiled kernels (numba) for the work that grows with millions of papers.

* :func:`estep_kernel`: gensim's LDA E-step over CSR bags of words (used through
  :func:`abstractor_widgets.model.estep`), for the staged build's training and inference and
  for the queries of a model whose documents it inferred;
* :func:`sum_postings`: the lexical index's sparse candidate accumulator (used by
  :class:`abstractor_widgets.lexical.LexicalIndex` when it reads the top of impact-ordered
  posting lists).

Imported lazily (``import numba`` costs about 0.4 s): small models never load it. The machine
code is cached on disk (numba's ``cache=True``: ``__pycache__`` beside this file, or the
user's cache directory when that is read-only), so only the first process of a machine
compiles (about 3 s); the others load it in milliseconds.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["estep_kernel", "sum_postings", "BLOCK_BITS"]


def _jit(function):
    """``numba.njit(nogil=True, cache=True)``, without the disk cache where numba finds no
    writable place for it (a read-only install and home): compiled per process then."""
    try:
        return numba.njit(nogil=True, cache=True)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(function)



@_jit
def digamma(x: float) -> float:
    # gensim's _matutils.pyx _digamma (Bernardo's AS 103): recurrence to x >= 8.5, then Stirling
    if x <= 0.000001:
        return -0.57721566490153286060 - 1.0 / x + 1.6449340668482264365 * x
    value = 0.0
    while x < 8.5:
        value -= 1.0 / x
        x += 1.0
    r = 1.0 / x
    value += np.log(x) - 0.5 * r
    r = r * r
    return value - r * (1.0 / 12.0 - r * (1.0 / 120.0 - r * (1.0 / 252.0 - r * (1.0 / 240.0 - r * (1.0 / 132.0)))))


@_jit
def expectation(gammad, out):
    total = 0.0
    for k in range(gammad.shape[0]):
        total += gammad[k]
    psi_total = digamma(total)
    for k in range(gammad.shape[0]):
        out[k] = np.float32(np.exp(np.float32(digamma(gammad[k]) - psi_total)))


@_jit
def normalizers(exp_theta, beta_t, indices, a, eps, out):
    # phinorm[j] = sum_k exp(E[log theta_k]) * exp(E[log beta_k,w_j]) (+ eps, as gensim)
    for j in range(out.shape[0]):
        row = beta_t[indices[a + j]]
        acc = np.float32(0.0)
        for t in range(exp_theta.shape[0]):
            acc += exp_theta[t] * row[t]
        out[j] = acc + eps


@_jit
def estep_kernel(beta_t, alpha, indptr, indices, counts, gamma, iterations, threshold, collect, sstats_t):
    n, k = gamma.shape
    eps = np.float32(np.finfo(np.float32).eps)
    exp_theta = np.empty(k, dtype=np.float32)
    last = np.empty(k, dtype=np.float32)
    sums = np.empty(k, dtype=np.float32)
    for d in range(n):
        a, b = indptr[d], indptr[d + 1]
        m = b - a
        phinorm = np.empty(m, dtype=np.float32)
        gammad = gamma[d]
        expectation(gammad, exp_theta)
        normalizers(exp_theta, beta_t, indices, a, eps, phinorm)
        for _ in range(iterations):
            for t in range(k):
                last[t] = gammad[t]
                sums[t] = 0.0
            for j in range(m):
                weight = counts[a + j] / phinorm[j]
                row = beta_t[indices[a + j]]
                for t in range(k):
                    sums[t] += weight * row[t]
            for t in range(k):
                gammad[t] = alpha[t] + exp_theta[t] * sums[t]
            expectation(gammad, exp_theta)
            normalizers(exp_theta, beta_t, indices, a, eps, phinorm)
            change = 0.0
            for t in range(k):
                change += abs(gammad[t] - last[t])
            if change / k < threshold:
                break
        if collect:
            for j in range(m):
                weight = counts[a + j] / phinorm[j]
                target = sstats_t[indices[a + j]]
                for t in range(k):
                    target[t] += exp_theta[t] * weight



#: Rows per block of :func:`sum_postings`'s accumulator: 8,192 float64 sums (64 KiB) stay in
#: the core's cache, where a hash table over the entries would miss it on every entry.
BLOCK_BITS = 13


@_jit
def sum_postings(indices, data, starts, ends, weights, excluded, n_rows, work_rows, work_values, rows, sums, stamp):
    """Sum ``data[j] * weights[i]`` by row ``indices[j]`` over the entries ``starts[i]:ends[i]``
    of each term ``i`` (the top of its posting list).

    Each product is float32 (as ``data * weights`` in numpy), and each row's products are
    summed in float64 in entry order (as ``np.bincount`` sums them): the same scores as the
    dense accumulator, bit for bit. The entries are first partitioned by blocks of
    ``2**BLOCK_BITS`` rows (a counting sort, which keeps their order), then each block is
    summed in a dense accumulator of a block's size: memory and time grow with the entries
    read, not with ``n_rows``. Rows in ``excluded`` (sorted ascending) are left out.

    The caller owns the work arrays, reused from query to query: ``work_rows`` (int32),
    ``work_values`` (float32), ``rows`` (int64) and ``sums`` (float64) of at least the
    entries' number; ``stamp`` (int64, ``2**BLOCK_BITS``, all -1, and left so). Fresh
    arrays of that size would cost more in page faults than the sums themselves.

    Returns
    -------
    int
        ``found``: the distinct rows are ``rows[:found]`` (by block, then first
        appearance) and their sums ``sums[:found]``.
    """
    span = 1 << BLOCK_BITS
    n_blocks = max((n_rows + span - 1) >> BLOCK_BITS, 1)
    offsets = np.zeros(n_blocks + 1, dtype=np.int64)
    for i in range(starts.shape[0]):
        for j in range(starts[i], ends[i]):
            offsets[(np.int64(indices[j]) >> BLOCK_BITS) + 1] += 1
    for b in range(n_blocks):
        offsets[b + 1] += offsets[b]
    fill = offsets[:n_blocks].copy()
    for i in range(starts.shape[0]):
        weight = np.float32(weights[i])
        for j in range(starts[i], ends[i]):
            row = np.int64(indices[j])
            at = fill[row >> BLOCK_BITS]
            work_rows[at] = row
            work_values[at] = np.float32(data[j]) * weight
            fill[row >> BLOCK_BITS] = at + 1
    accumulator = np.zeros(span, dtype=np.float64)
    found = 0
    for b in range(n_blocks):
        first = found
        for at in range(offsets[b], offsets[b + 1]):
            local = work_rows[at] & (span - 1)
            if stamp[local] != b:  # the row's first entry (0.0 + v == v: the same sum)
                stamp[local] = b
                rows[found] = work_rows[at]
                found += 1
                accumulator[local] = np.float64(work_values[at])
            else:
                accumulator[local] += np.float64(work_values[at])
        for f in range(first, found):
            local = rows[f] & (span - 1)
            sums[f] = accumulator[local]
            stamp[local] = -1
    if excluded.shape[0] == 0:
        return found
    kept = 0
    for f in range(found):
        at = np.searchsorted(excluded, rows[f])  # a filter may exclude millions of rows
        if at < excluded.shape[0] and excluded[at] == rows[f]:
            continue
        rows[kept] = rows[f]
        sums[kept] = sums[f]
        kept += 1
    return kept
