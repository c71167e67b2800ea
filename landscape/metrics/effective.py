"""Liu et al. (2022)'s effective theory on the training split each run trains on, and the RQI of its dynamics.

:func:`spectra` builds the effective loss's Hessian from the parallelograms of a run's training examples (its
``train_frac`` share of the task's training split) and returns its spectrum (``landscape.analysis.effective``):
the smallest non-trivial eigenvalue ``lambda`` (lambda_3 on integer addition, lambda_2 mod p), or none below the
critical fraction. ``landscape train`` stores it with each trajectory (:func:`attributes`).

The metric ``effective_rqi`` follows the effective dynamics ``dE/dt = -eta dl_eff/dE`` from the run's own initial
embeddings, standardized over the tokens as Liu et al.'s code does (zero mean and unit variance in each dimension,
so ``Z_0 = (p - 1) d`` and the clock does not depend on the initialization's scale), with eta its embedding's
learning rate (``--group-lr`` when ``--group`` holds the embedding) and time the learning rate summed over the
steps taken (warm-up and schedule included), and logs their RQI beside the network's ``rqi``: on integer
addition only (mod p the linear flow collapses to the mean; the structure there is circles of the phases,
``landscape.analysis.effective``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import metric
from ..analysis import effective
from . import progress
from .embedding import rqi, tokens

DESCRIPTION = ("Liu et al. (2022)'s effective theory of the trajectory's training examples: effective_lambda is the "
               "smallest non-trivial eigenvalue of the effective loss's Hessian over their parallelograms "
               "(lambda_{effective_lambda_index}; NaN below the critical fraction, where D does not determine the "
               "structure), effective_null_dim its zero eigenvalues against effective_ideal_null_dim; "
               "effective_ideal_test_acc the share of test examples whose sum a training example shares (the test "
               "accuracy a structure the training set determines allows)")


def needs(task) -> str | None:
    """None when the effective theory applies to ``task`` (addition a + b of numbers 0..p-1, mod p or not), else
    what it needs, in one line."""
    s = task.structure
    if "modulus" not in s or s.get("op") != "+":
        return ("an addition task (structure['modulus'] and op '+': addition, or modular with op +); the effective "
                "theory counts parallelograms i + j = m + n")
    try:
        a, b = operands(task)
    except ValueError as e:
        return str(e)
    return _sums_decide_targets(task, a, b)


def _sums_decide_targets(task, a: np.ndarray, b: np.ndarray) -> str | None:
    """None when training examples with the same sum (mod p on a modular task) have the same target: the
    parallelograms the theory counts are the task's; else what it needs."""
    p, modular = task.structure["modulus"], bool(task.structure.get("modular", True))
    sums = (a + b) % p if modular else a + b
    y = task.y_train.detach().cpu().reshape(len(task.y_train), -1).double().numpy()
    first = {}
    for s, row in zip(sums.tolist(), y):
        if not np.array_equal(first.setdefault(s, row), row):
            return (f"targets decided by the sum a + b{' mod p' if modular else ''}: two training examples with "
                    f"the sum {s} have different targets; declare structure['operands'] (or 'op')")
    return None


def _needs_path(task) -> str | None:
    why = needs(task)
    if why is None and "embedding" not in task.structure:
        return "the token embeddings: structure['embedding'] (tasks.contract)"
    if why is None and task.structure.get("modular", True):
        return "integer addition (structure['modular'] False): mod p the effective flow collapses to the mean"
    return why


def operands(task, count: int | None = None, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The operands ``(a, b)`` of the first ``count`` examples of ``split`` (default all) as integers in 0..p-1;
    ``ValueError`` with one line when the inputs are not such pairs."""
    x = task.x_train if split == "train" else task.x_test
    try:
        a, b = (torch.as_tensor(t).detach().cpu().double().numpy()[:count] for t in progress.operands(task, x))
    except (IndexError, TypeError, AttributeError, RuntimeError, ValueError):
        raise ValueError("operands (a, b) of each example: the inputs' first two columns, or "
                         "structure['operands']") from None
    p = task.structure["modulus"]
    if not all(np.all(t == np.round(t)) and np.all((t >= 0) & (t < p)) for t in (a, b)):
        raise ValueError(f"integer operands in 0..{p - 1}: the inputs' first two columns, or structure['operands'], "
                         "are not")
    return a.astype(np.int64), b.astype(np.int64)


def spectra(task, counts: list[int]) -> list[effective.Spectrum]:
    """The spectrum of each run's training examples (its first ``counts[i]``), each distinct count computed once."""
    p, modular = task.structure["modulus"], bool(task.structure.get("modular", True))
    done: dict[int, effective.Spectrum] = {}
    for n in counts:
        if n not in done:
            done[n] = effective.spectrum(*operands(task, n), p, modular)
    return [done[n] for n in counts]


def ideal_test_accuracy(task, count: int) -> float:
    """The share of test examples whose sum (mod p on a modular task) one of the first ``count`` training examples
    shares: the test accuracy a structure the training set determines allows (Liu et al.'s ideal accuracy, above
    the critical fraction; a test sum no training example has cannot be decoded)."""
    p, modular = task.structure["modulus"], bool(task.structure.get("modular", True))
    sums = [(a + b) % p if modular else a + b for a, b in (operands(task, count), operands(task, None, "test"))]
    return float(np.isin(sums[1], sums[0]).mean())


def attributes(spec: effective.Spectrum, ideal: float) -> dict:
    """What a trajectory stores of its spectrum and its ideal test accuracy."""
    return {"effective_lambda": float("nan") if spec.lam is None else spec.lam,
            "effective_ideal_test_acc": ideal,
            "effective_lambda_index": spec.ideal_null_dim + 1, "effective_null_dim": spec.null_dim,
            "effective_ideal_null_dim": spec.ideal_null_dim, "effective_parallelograms": spec.parallelograms,
            "effective_description": DESCRIPTION}


@dataclass
class Dynamics:
    """The effective dynamics of a group of runs: each one's Hessian, initial embeddings and embedding learning
    rate, and ``clock(step)``: the learning-rate multiplier summed over the steps before ``step``."""

    hessians: list[np.ndarray]
    eig: list[tuple[np.ndarray, np.ndarray]]  # np.linalg.eigh of each Hessian, once per training set
    start: list[np.ndarray]  # [p, d] each
    eta: list[float]
    clock: Callable[[int], float]

    @classmethod
    def of(cls, task, layout, theta0: torch.Tensor, counts: list[int], eta: list[float],
           clock: Callable[[int], float]) -> "Dynamics":
        p, modular = task.structure["modulus"], bool(task.structure.get("modular", True))
        E0 = tokens(task, layout, theta0).detach().cpu().double().numpy()
        E0 = (E0 - E0.mean(1, keepdims=True)) / E0.std(1, ddof=1, keepdims=True).clip(1e-300)  # as Liu et al.
        H = {n: effective.hessian(*operands(task, n), p, modular) for n in set(counts)}
        eig = {n: np.linalg.eigh(h) for n, h in H.items()}
        return cls([H[n] for n in counts], [eig[n] for n in counts], list(E0), list(eta), clock)

    def embeddings(self, step: int) -> np.ndarray:
        """``[M, p, d]``: each run's effective embeddings after ``step`` steps."""
        t = self.clock(step)
        return np.stack([effective.path(H, E, eta, np.array([t]), eig)[0]
                         for H, eig, E, eta in zip(self.hessians, self.eig, self.start, self.eta)])


@metric("effective_rqi", "RQI of the effective theory's embeddings (Liu et al. 2022): dE/dt = -eta dl_eff/dE from "
        "the run's initial embeddings over its training parallelograms, at the same step", "fraction",
        applies=_needs_path, tasks="integer addition (the addition task)")
def effective_rqi(ctx):
    if ctx.effective is None:  # evaluated outside a training run: nothing to follow
        return torch.full((ctx.theta.shape[0],), float("nan"), dtype=torch.float64)
    return rqi(torch.from_numpy(ctx.effective.embeddings(ctx.step)))
