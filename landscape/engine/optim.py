"""Optimizers on flat, batched parameters ``theta: [M, P]``, built from small pieces.

An optimizer is a composition of pure pieces:

* ``adam_moments``  -- update Adam's first and second moments with a gradient;
* ``adam_direction`` -- the bias-corrected step direction ``m_hat / (sqrt(v_hat) + eps)``;
* the sphere pieces from ``landscape.engine.sphere`` -- tangent projection and retraction.

Two constrained methods are offered (``METHODS``, the one registry that the
CLI's ``--method`` choices, the file and the figures' labels read):

``riemannian`` (default)
    Riemannian Adam on the sphere: project the gradient onto the tangent space,
    update the moments, project the step direction (Adam's per-coordinate
    scaling tilts it off the tangent plane), step, retract to norm ``w``, and
    carry the first moment to the new tangent space by projection.
``project``
    Omnigrok's scheme: a plain Adam step on the raw gradient, then rescale to ``w``.

``adamw_step`` is unconstrained AdamW with decoupled weight decay, for free training.
``lr`` and ``weight_decay`` are numbers or per-member tensors ``[M, 1]``;
``mask=None`` constrains every coordinate (see ``landscape.engine.sphere``). The pieces
avoid needless passes over ``[M, P]``: at scan sizes the optimizer is a
sizeable share of a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from . import sphere

BETAS = (0.9, 0.999)
EPS = 1e-8


@dataclass
class AdamState:
    """Adam's moments ``m``, ``v`` (each ``[M, P]``) and the number of steps taken."""

    m: torch.Tensor
    v: torch.Tensor
    t: int = 0

    @classmethod
    def zeros_like(cls, theta: torch.Tensor) -> "AdamState":
        return cls(torch.zeros_like(theta), torch.zeros_like(theta), 0)


def adam_moments(state: AdamState, grad: torch.Tensor, betas=BETAS) -> AdamState:
    """Exponential moving averages of the gradient and its square."""
    b1, b2 = betas
    m = torch.lerp(state.m, grad, 1 - b1)
    v = state.v.mul(b2).addcmul_(grad, grad, value=1 - b2)
    return AdamState(m, v, state.t + 1)


def adam_denominator(state: AdamState, betas=BETAS, eps=EPS) -> torch.Tensor:
    """``(1 - b1^t) * (sqrt(v_hat) + eps)``: the raw first moment divided by it is Adam's direction.

    Both bias corrections sit in this one tensor, so a step needs a single division.
    """
    b1, b2 = betas
    c1, c2 = 1 - b1**state.t, 1 - b2**state.t
    return state.v.sqrt().mul_(c1 / math.sqrt(c2)).add_(c1 * eps)


def adam_direction(state: AdamState, betas=BETAS, eps=EPS) -> torch.Tensor:
    """Bias-corrected Adam direction ``m_hat / (sqrt(v_hat) + eps)`` for a state with ``state.t >= 1``."""
    return state.m / adam_denominator(state, betas, eps)


def riemannian_adam_step(theta, grad, state, lr, target, mask, betas=BETAS, weight_decay=0.0):
    """One Riemannian Adam step on the sphere; returns ``(theta, state)``.

    ``weight_decay`` (a number or ``[M, 1]``) decays the free coordinates only,
    as AdamW does: on the constrained ones the norm is fixed.
    """
    g = sphere.tangent(theta, grad, mask)
    state = adam_moments(state, g, betas)
    d = sphere.tangent(theta, adam_direction(state, betas), mask)
    if mask is not None and not (isinstance(weight_decay, (int, float)) and weight_decay == 0):
        theta = theta * (1 - lr * weight_decay * sphere.free(mask))
    theta = sphere.retract(_step(theta, d, lr), target, mask)
    state = AdamState(sphere.tangent(theta, state.m, mask), state.v, state.t)
    return theta, state


def projected_adam_step(theta, grad, state, lr, target, mask):
    """Omnigrok's constrained step: plain Adam, then rescale to the target norm."""
    state = adam_moments(state, grad)
    step = torch.addcdiv(theta, state.m, adam_denominator(state), value=-lr)
    return sphere.retract(step, target, mask), state


@dataclass(frozen=True)
class Method:
    """A constrained method: its step ``(theta, grad, state, lr, target, mask) -> (theta, state)`` and its name
    for figures and tables."""

    step: Callable
    label: str


METHODS = {
    "riemannian": Method(riemannian_adam_step, "Riemannian Adam"),
    "project": Method(projected_adam_step, "projected Adam (Omnigrok)"),
}


def adamw_step(theta, grad, state, lr, weight_decay, betas=BETAS):
    """AdamW (decoupled decay): ``theta <- theta - lr * (adam_direction + wd * theta)``."""
    state = adam_moments(state, grad, betas)
    decayed = theta * (1 - lr * weight_decay)
    if isinstance(lr, torch.Tensor):  # per-member learning rates
        return decayed.sub_(state.m.div(adam_denominator(state, betas)).mul_(lr)), state
    return decayed.addcdiv_(state.m, adam_denominator(state, betas), value=-lr), state


def _step(theta: torch.Tensor, d: torch.Tensor, lr) -> torch.Tensor:
    """``theta - lr * d`` for a number or a per-member ``[M, 1]`` learning rate."""
    return theta - lr * d if isinstance(lr, torch.Tensor) else torch.add(theta, d, alpha=-lr)


