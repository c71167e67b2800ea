"""Liu et al. (2022)'s effective theory of representation learning, computed from a training set alone.

On addition a network generalizes once its embeddings are structured: ``E_i + E_j = E_m + E_n`` whenever
``i + j = m + n``. The effective loss counts how far they are from it over the parallelograms the training set D
contains::

    l_eff = l_0 / Z_0,   l_0 = sum over P_0(D) of |E_i + E_j - E_m - E_n|^2,   Z_0 = sum_k |E_k|^2,

P_0(D) the pairs of distinct training samples (i, j), (m, n) with the same sum (Liu et al.'s code: unordered pairs
of samples). ``l_0`` is a quadratic form on the tokens, ``l_0 = tr(E^T H E) / 2``, and its Hessian ``H [p, p]``
(the same for every embedding dimension) depends on D alone: :func:`hessian`.

*Integer addition* (Liu et al.'s toy task): the structured embeddings ``E_k = a + b k`` span H's null space when D
pins them down, so ``lambda_1 = lambda_2 = 0`` (translation and the linear structure) and ``lambda_3 > 0``; a token
D never shows, or too few parallelograms, leave more zero eigenvalues. Their proposition: grokking time ~ 1 /
lambda_3.

*Modular addition* (sums congruent mod p): no linear structure satisfies the congruences but the constants
(``E_{k+1} - E_k`` would be the same b for every k, and p b = 0). The structured solutions are the circles
``E_k = u cos(2 pi f k / p) + v sin(2 pi f k / p)`` of each frequency f, in the phases ``theta_k = 2 pi f k / p``:
parallelograms hold mod 2 pi, and near any of them the effective loss of the phases is the same quadratic form H
built from the congruent parallelograms. Its ideal null space is one-dimensional (a rotation of the circle), and
the smallest non-trivial eigenvalue is ``lambda_2``: the role ``lambda_3`` plays for integer addition.

:func:`path` integrates the effective dynamics ``dE/dt = -eta dl_eff/dE`` exactly: the gradient is orthogonal to
E, so ``Z_0`` is conserved and ``E(t) = sqrt(Z_0) exp(-eta H t / Z_0) E_0 / |exp(-eta H t / Z_0) E_0|``.
:func:`loo_fit` fits ``t = c / lambda`` leave-one-out over a sweep. Pure numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TOLERANCE = 1e-9  # an eigenvalue below this share of the largest is zero


def hessian(a: np.ndarray, b: np.ndarray, p: int, modular: bool) -> np.ndarray:
    """The Hessian ``[p, p]`` of ``l_0`` for the training samples ``(a[s], b[s])`` (numbers in 0..p-1).

    Each unordered pair of distinct samples s, t with the same sum (mod p when ``modular``) is one parallelogram,
    with row ``v_s - v_t`` (``v_s = e_a + e_b``); ``H = 2 sum (v_s - v_t)(v_s - v_t)^T``, summed per sum class c as
    ``n_c sum_s v_s v_s^T - V_c V_c^T`` (``V_c = sum_s v_s``), without listing the parallelograms.
    """
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("hessian: a and b must be equal-length vectors of numbers")
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= p):
        raise ValueError(f"hessian: the numbers must be in 0..{p - 1}")
    s = (a + b) % p if modular else a + b
    v = np.zeros((len(a), p))
    np.add.at(v, (np.arange(len(a)), a), 1.0)
    np.add.at(v, (np.arange(len(a)), b), 1.0)
    classes = 2 * p - 1
    count = np.bincount(s, minlength=classes).astype(np.float64)
    summed = np.zeros((classes, p))
    np.add.at(summed, s, v)
    return 2 * ((v * count[s][:, None]).T @ v - summed.T @ summed)


def parallelograms(a: np.ndarray, b: np.ndarray, p: int, modular: bool) -> int:
    """How many parallelograms ``P_0(D)`` holds: unordered pairs of distinct samples with the same sum."""
    s = (np.asarray(a) + np.asarray(b)) % p if modular else np.asarray(a) + np.asarray(b)
    n = np.bincount(s, minlength=2 * p - 1)
    return int((n * (n - 1) // 2).sum())


def ideal_null(modular: bool) -> int:
    """The null space's dimension when D determines the structure: 2 (constant, linear) or 1 (a rotation)."""
    return 1 if modular else 2


@dataclass(frozen=True)
class Spectrum:
    """H's eigenvalues (ascending), its null space's dimension against the ideal one, and ``lam``: the smallest
    non-trivial eigenvalue (``lambda_3``, or ``lambda_2`` mod p), None below the critical fraction."""

    eigenvalues: np.ndarray
    null_dim: int
    ideal_null_dim: int
    parallelograms: int
    modular: bool

    @property
    def lam(self) -> float | None:
        return float(self.eigenvalues[self.ideal_null_dim]) if self.null_dim <= self.ideal_null_dim else None

    @property
    def name(self) -> str:
        return f"lambda_{self.ideal_null_dim + 1}"

    @property
    def reason(self) -> str | None:
        """Why there is no ``lam`` (None when there is one)."""
        if self.lam is not None:
            return None
        extra = self.null_dim - self.ideal_null_dim
        return (f"below the critical fraction: {extra} more zero eigenvalue{'s' if extra > 1 else ''} than the "
                f"structure needs ({self.parallelograms} parallelograms), so D does not determine it")


def spectrum(a, b, p: int, modular: bool) -> Spectrum:
    """The spectrum of :func:`hessian` for the samples ``(a, b)``."""
    H = hessian(a, b, p, modular)
    w = np.linalg.eigvalsh(H)
    zero = w < TOLERANCE * max(float(w[-1]), 1.0)
    w = np.where(zero, 0.0, w)
    return Spectrum(w, int(zero.sum()), ideal_null(modular), parallelograms(a, b, p, modular), modular)


def path(H: np.ndarray, E0: np.ndarray, eta: float, steps: np.ndarray) -> np.ndarray:
    """The effective dynamics from ``E0 [p, d]`` (centred over the tokens first) at times ``eta * steps``:
    ``[len(steps), p, d]``. Exact for the continuous flow (module docstring); Euler steps of size eta agree to
    O(eta lambda_max / Z_0)."""
    E = np.asarray(E0, dtype=np.float64)
    E = E - E.mean(0, keepdims=True)
    Z = float((E ** 2).sum())
    if Z == 0:
        raise ValueError("path: the initial embeddings are all equal: the effective loss is undefined")
    w, V = np.linalg.eigh(H)
    coef = V.T @ E  # [p, d]
    t = np.asarray(steps, dtype=np.float64)[:, None]
    # scale each time's decays by the slowest one, so late times do not underflow to 0 / 0
    rate = eta * np.clip(w, 0, None)[None, :] / Z
    decay = np.exp(-(rate - rate.min(1, keepdims=True)) * t)  # [T, p]
    X = np.einsum("pk,tk,kd->tpd", V, decay, coef)
    norm = np.sqrt((X ** 2).sum((1, 2), keepdims=True))
    return math.sqrt(Z) * X / np.where(norm > 0, norm, 1.0)


@dataclass(frozen=True)
class Fit:
    """``t = c / lambda`` over a sweep: each run's leave-one-out prediction (c from the others), the log-log slope
    of t against lambda (the theory: -1) with its standard error, and the worst ratio of prediction to measure."""

    names: list[str]
    lam: np.ndarray
    measured: np.ndarray
    predicted: np.ndarray  # leave-one-out; NaN where fewer than one other run
    c: float  # from all runs
    slope: float | None
    slope_se: float | None
    worst_ratio: float | None  # max over runs of max(pred/measured, measured/pred)


def loo_fit(names: list[str], lam, measured) -> Fit:
    """Fit ``log t = log c - log lambda`` (c the geometric mean of ``t lambda``) over the runs with both a
    positive lambda and a measured step; each run's prediction uses c from the others only."""
    lam, t = np.asarray(lam, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    ok = np.isfinite(lam) & (lam > 0) & np.isfinite(t) & (t > 0)
    names = [n for n, k in zip(names, ok) if k]
    lam, t = lam[ok], t[ok]
    logc = np.log(t * lam)
    n = len(t)
    predicted = np.full(n, np.nan)
    if n >= 2:
        others = (logc.sum() - logc) / (n - 1)
        predicted = np.exp(others) / lam
    slope = se = None
    if n >= 3 and np.ptp(np.log(lam)) > 0:
        x, y = np.log(lam), np.log(t)
        A = np.stack([x, np.ones_like(x)], 1)
        coef, *_ = np.linalg.lstsq(A, y, rcond=None)
        resid = y - A @ coef
        var = (resid @ resid) / (n - 2)
        slope = float(coef[0])
        se = float(math.sqrt(var / ((x - x.mean()) ** 2).sum()))
    ratio = predicted / t
    worst = float(np.nanmax(np.maximum(ratio, 1 / ratio))) if n >= 2 else None
    return Fit(names, lam, t, predicted, float(np.exp(logc.mean())) if n else float("nan"), slope, se, worst)


def critical_fraction(fractions, lams) -> float | None:
    """The smallest training fraction from which every larger one has a lambda (None when none has)."""
    order = np.argsort(fractions)
    f, ok = np.asarray(fractions, dtype=np.float64)[order], np.asarray([x is not None and x > 0 for x in
                                                                         np.asarray(lams, dtype=object)[order]])
    if not ok.any() or not ok[-1]:
        return None
    last_bad = np.where(~ok)[0]
    return float(f[last_bad[-1] + 1]) if len(last_bad) else float(f[0])
