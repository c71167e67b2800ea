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
from dataclasses import dataclass, field

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


def path(H: np.ndarray, E0: np.ndarray, eta: float, steps: np.ndarray, eig=None) -> np.ndarray:
    """The effective dynamics from ``E0 [p, d]`` (centred over the tokens first) at times ``eta * steps``:
    ``[len(steps), p, d]``. Exact for the continuous flow (module docstring); Euler steps of size eta agree to
    O(eta lambda_max / Z_0). ``eig``: ``np.linalg.eigh(H)`` when the caller already has it."""
    E = np.asarray(E0, dtype=np.float64)
    E = E - E.mean(0, keepdims=True)
    Z = float((E ** 2).sum())
    if Z == 0:
        raise ValueError("path: the initial embeddings are all equal: the effective loss is undefined")
    w, V = np.linalg.eigh(H) if eig is None else eig
    coef = V.T @ E  # [p, d]
    t = np.asarray(steps, dtype=np.float64)[:, None]
    # scale each time's decays by the slowest mode E0 holds, so late times do not underflow to 0 / 0
    rate = eta * np.clip(w, 0, None) / Z
    held = np.abs(coef).max(1) > 1e-12 * max(np.abs(coef).max(), 1e-300)
    excess = np.where(held, rate - rate[held].min(), 0.0)
    decay = np.where(held[None, :], np.exp(-excess[None, :] * t), 0.0)  # [T, p]; modes E0 lacks stay 0
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
    """The smallest training fraction from which every larger one has a positive lambda (None when the largest
    has none)."""
    order = np.argsort(fractions)
    f = np.asarray(fractions, dtype=np.float64)[order]
    ok = np.array([lams[i] is not None and lams[i] > 0 for i in order], dtype=bool)
    if not len(ok) or not ok[-1]:
        return None
    bad = np.where(~ok)[0]
    return float(f[bad[-1] + 1]) if len(bad) else float(f[0])


RQI_LEVEL = 0.95  # Liu et al.'s "steps to high RQI" (their Figure 4b)
MEASURES = {"grokking": "grokking step (the analysis's criterion)",
            "rqi": f"first logged step with RQI >= {RQI_LEVEL} (Liu et al.'s steps to high RQI)",
            "effective_rqi": f"first logged step with effective RQI >= {RQI_LEVEL} (the effective dynamics themselves)"}


@dataclass
class Row:
    """One run of a sweep: its training share, its lambda (None below the critical fraction), its measured steps
    (``MEASURES``: None when never reached) and each one's leave-one-out prediction ``c / lambda``, c from the sweep's
    other runs, with the ratio predicted / measured."""

    name: str
    train_frac: float
    seed: int | None
    lam: float | None
    measured: dict[str, float | None]
    ideal_test_acc: float | None = None  # the test accuracy a determined structure allows
    examples: int | None = None  # training examples (the run's share of the split)
    null: tuple[int, int] | None = None  # (zero eigenvalues, the ideal number)
    predicted: dict[str, float | None] = field(default_factory=dict)
    ratio: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Sweep:
    """The effective theory against one sweep (runs sharing every hyperparameter but training share and seed): per
    measure, the fit (``Fit``: slope of log step against log lambda, its error, c, the worst ratio)."""

    key: str  # the shared hyperparameters, in words
    index: int  # lambda_3 (integer addition) or lambda_2 (mod p)
    rows: list[Row]
    fits: dict[str, Fit]
    critical_fraction: float | None  # from lambda: every share from here up determines the structure
    smallest_grokking_fraction: float | None  # the smallest share at which any run grokked


_SHARED = ("lr", "group_lr", "weight_decay", "group_weight_decay", "init_scale", "fix_norm", "batch_size", "steps",
           "warmup", "schedule", "betas")


def first_at(t: dict, series: str, level: float) -> float | None:
    """The first logged step at which ``series`` reaches ``level`` (None when it never does or is not logged)."""
    if series not in t:
        return None
    hit = np.nonzero(np.asarray(t[series], dtype=np.float64) >= level)[0]
    return float(np.asarray(t["step"])[hit[0]]) if len(hit) else None


def sweeps(trajectories: list[dict], grokking_steps: list[float | None]) -> list[Sweep]:
    """The effective theory's prediction for every sweep of runs that store a spectrum (``landscape train`` on an
    addition task) over two or more training shares (a sweep of one share has one lambda: nothing to fit):
    ``read_trajectories`` dicts and each one's measured grokking step (None: never grokked)."""
    groups: dict[tuple, list[Row]] = {}
    index = {}
    for t, step in zip(trajectories, grokking_steps):
        if "effective_lambda" not in t:
            continue
        key = tuple((k, tuple(np.ravel(t[k]).tolist()) if k == "betas" else t[k]) for k in _SHARED
                    if t.get(k) is not None)
        lam = float(t["effective_lambda"])
        measured = {"grokking": step, "rqi": first_at(t, "rqi", RQI_LEVEL),
                    "effective_rqi": first_at(t, "effective_rqi", RQI_LEVEL)}
        groups.setdefault(key, []).append(Row(t["name"], float(t.get("train_frac", 1.0)), t.get("seed"),
                                              lam if np.isfinite(lam) and lam > 0 else None, measured,
                                              t.get("effective_ideal_test_acc"), t.get("train_examples"),
                                              (int(t.get("effective_null_dim", -1)),
                                               int(t.get("effective_ideal_null_dim", -1)))))
        index[key] = int(t.get("effective_lambda_index", 3))
    return [_sweep(key, rows, index[key]) for key, rows in groups.items() if len({r.train_frac for r in rows}) > 1]


def _sweep(key: tuple, rows: list[Row], index: int) -> Sweep:
    fits = {}
    for measure in MEASURES:
        fit = loo_fit([r.name for r in rows], [np.nan if r.lam is None else r.lam for r in rows],
                      [np.nan if r.measured[measure] is None else r.measured[measure] for r in rows])
        fits[measure] = fit
        predicted = dict(zip(fit.names, fit.predicted))
        for r in rows:
            value = predicted.get(r.name)
            r.predicted[measure] = float(value) if value is not None and np.isfinite(value) else None
            r.ratio[measure] = None if r.predicted[measure] is None else r.predicted[measure] / r.measured[measure]
    fracs = sorted({r.train_frac for r in rows})
    lam_at = [min((r.lam or 0.0) for r in rows if r.train_frac == f) for f in fracs]
    grokked = [r.train_frac for r in rows if r.measured["grokking"] is not None]
    words = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in key
                      if k in ("lr", "group_lr", "weight_decay", "group_weight_decay", "init_scale"))
    return Sweep(words, index, rows, fits, critical_fraction(fracs, lam_at), min(grokked) if grokked else None)
