"""Hand-batched forward and backward of MLP ensembles: the fast path of ``landscape.engine.ensemble``.

Most tasks are multilayer perceptrons: an ``nn.Sequential`` of ``nn.Linear``
layers, each optionally followed by a ReLU, Tanh or Sigmoid, and possibly
shape-only modules (a leading ``nn.Flatten`` of the image axes, as in Omnigrok's
MNIST MLP, whose flattening the forward pass then does itself; ``nn.Identity``
anywhere). For those the ensemble's gradient is written out directly as batched
matrix products on views of the flat parameters ``theta: [M, P]``: no autograd
graph, no ``vmap`` bookkeeping, biases folded into the products, activations
applied in place and differentiated from their outputs. The built-in losses
(``mse``, ``cross_entropy`` on integer labels) have their output gradients
written out too; any other task loss is differentiated with ``torch.func``.

The numbers equal the generic ``vmap`` engine's to float rounding
(``tests/test_mlp.py``); the speed is measured in ``benchmarks/performance.py``.
``chain_of`` decides whether a model qualifies; anything else uses ``vmap``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch.func import grad_and_value, vmap

from ..tasks import cross_entropy, masked, mse


def _tanh_(z: torch.Tensor) -> torch.Tensor:
    # tanh(z) = 2 sigmoid(2z) - 1: equal to torch.tanh within 2e-7 and, with
    # torch's CPU kernels, about twice as fast.
    return z.mul_(2).sigmoid_().mul_(2).sub_(1)


# The derivatives below overwrite both arguments: ``Chain.grad`` hands them its
# own temporaries, the incoming gradient ``d`` and the layer output ``y``, which
# nothing reads afterwards. Each rounds exactly as torch's own backward kernel
# for that activation (tanh's ``1 - y^2`` in one fused multiply-add, sigmoid's
# ``(d (1 - y)) y`` in that order), so the engine's numbers do not depend on
# which is used; a boolean mask (``d * (y > 0)``, ``torch.where``,
# ``masked_fill``) would be 2-4 times slower on CPU than ReLU's ``sign``.


def _relu_grad_(d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # y = relu(z) >= 0, so sign(y) is relu's derivative (y > 0) as 0.0 / 1.0.
    return d.mul_(y.sign_())


def _tanh_grad_(d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # d (1 - y^2), with 1 - y^2 as one fused multiply-add into y (compiled: written out, and fused anyway,
    # since torch.compile refuses ``out=`` into the transposed products' outputs)
    if torch.compiler.is_compiling():
        return d * (1 - y * y)
    return d.mul_(torch.addcmul(y.new_ones(()), y, y, value=-1, out=y))


def _sigmoid_grad_(d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # (d (1 - y)) y
    return d.mul_(torch.rsub(y, 1)).mul_(y)


# activation -> (in-place forward, in-place derivative ``(d, y) -> d * f'(z)`` from the output ``y = f(z)``)
ACTIVATIONS = {
    torch.nn.ReLU: (torch.relu_, _relu_grad_),
    torch.nn.Tanh: (_tanh_, _tanh_grad_),
    torch.nn.Sigmoid: (torch.sigmoid_, _sigmoid_grad_),
}


def _bmm(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``bias + a @ b`` batched; computed as ``(b^T a^T)^T`` when the product has fewer columns than rows.

    BLAS kernels (MKL on CPU) are several times slower on products with only a
    few output columns, such as a 5-unit layer; the transposed product is not.
    """
    if b.shape[-1] < a.shape[-2]:
        if bias is None:
            return torch.bmm(b.mT, a.mT).mT
        return torch.baddbmm(bias.mT, b.mT, a.mT).mT
    return torch.bmm(a, b) if bias is None else torch.baddbmm(bias, a, b)


def _mse_grad(out: torch.Tensor, y: torch.Tensor, keep: torch.Tensor | None = None):
    """``(d loss / d out, loss)`` of ``tasks.mse`` for every member: ``out [M, N, D]``; with ``keep [M, N]``
    the mean over each member's kept examples."""
    diff = out - y
    if keep is None:
        return diff.mul(2 / diff[0].numel()), diff.square().mean(dim=(1, 2))
    scale = (keep / (keep.sum(1, keepdim=True) * diff.shape[-1])).unsqueeze(-1)
    return diff.mul(2 * scale), (diff.square() * scale).sum(dim=(1, 2))


IGNORE_INDEX = -100  # F.cross_entropy's default


def _cross_entropy_grad(out: torch.Tensor, y: torch.Tensor, subset: torch.Tensor | None = None):
    """``(d loss / d out, loss)`` of ``tasks.cross_entropy`` with integer labels ``y``: ``out [M, N, C]``.

    Like ``F.cross_entropy``, labels equal to -100 are ignored and the mean is over the others; with
    ``subset [M, N]``, over each member's examples where it is 1.
    """
    labels = y.expand(out.shape[:-1])
    keep = (labels != IGNORE_INDEX).to(out.dtype)
    if subset is not None:
        keep = keep * subset
    count = keep.sum(1)
    labels = labels.clamp(min=0).unsqueeze(-1)
    logp = torch.log_softmax(out, dim=-1)
    loss = -(logp.gather(-1, labels).squeeze(-1) * keep).sum(1) / count
    d = logp.exp_().scatter_add_(-1, labels, torch.full_like(labels, -1, dtype=out.dtype))
    return d.mul_((keep / count.unsqueeze(1)).unsqueeze(-1)), loss


def _closed_form(loss, out: torch.Tensor, y: torch.Tensor):
    """The written-out output gradient of a built-in loss for these shapes, or None (``torch.func`` then)."""
    if loss is mse and y.dtype == out.dtype and y.shape == out.shape[-y.dim():] and y.dim() >= 2:
        return _mse_grad
    if loss is cross_entropy and not y.is_floating_point() and not y.is_complex() \
            and y.shape == out.shape[-y.dim() - 1:-1] and y.dim() >= 1:
        return _cross_entropy_grad
    return None


@dataclass(frozen=True)
class Dense:
    """One ``nn.Linear`` layer: where its parameters sit in the flat vector, and what follows it."""

    weight: str  # parameter names in the layout
    bias: str | None
    n_in: int
    n_out: int
    activation: type | None  # a key of ACTIVATIONS, applied to the layer's output
    flat_input: bool = False  # the first layer only: its input is the model's, flattened past the batch axis


def chain_of(module: torch.nn.Module, layout) -> tuple[Dense, ...] | None:
    """The model as a chain of dense layers, or None when it is not a plain MLP.

    Qualifies: an ``nn.Sequential`` of ``nn.Linear`` layers, each followed by at
    most one activation from ``ACTIVATIONS``, whose parameters are exactly the
    layout's (all trainable), with these shape-only modules besides:

    - ``nn.Flatten()`` (``start_dim=1, end_dim=-1``: every axis but the batch
      axis) before the first ``nn.Linear``; ``Chain`` then flattens the input;
    - ``nn.Identity`` anywhere.

    A Flatten of other axes, or one after a Linear, disqualifies the model, as
    does any other module. Modules used twice (tied layers), forward hooks and
    instance-level ``forward`` overrides change what the model computes, so they
    disqualify it too.
    """
    if type(module) is not torch.nn.Sequential or len(module) == 0 or _altered(module):
        return None
    children = list(module.named_children())  # lists a module used twice once, and skips None entries
    if len(children) != len(module):  # len() and iteration of a Sequential count every entry
        return None
    layers: list[Dense] = []
    names: list[str] = []
    flat = False  # an nn.Flatten seen before the first Linear
    for name, child in children:
        if _altered(child):
            return None
        if type(child) is torch.nn.Identity:
            continue
        if type(child) is torch.nn.Flatten and not layers and (child.start_dim, child.end_dim) == (1, -1):
            flat = True
        elif type(child) is torch.nn.Linear:
            bias = f"{name}.bias" if child.bias is not None else None
            layers.append(Dense(f"{name}.weight", bias, child.in_features, child.out_features, None,
                                flat_input=flat and not layers))
            names += [f"{name}.weight"] + ([bias] if bias else [])
        elif type(child) in ACTIVATIONS and layers and layers[-1].activation is None:
            layers[-1] = replace(layers[-1], activation=type(child))
        else:
            return None
    if not layers or tuple(names) != tuple(layout.names):
        return None
    return tuple(layers)


def _altered(module: torch.nn.Module) -> bool:
    """True when hooks or an instance attribute replace what ``module.forward`` computes.

    torch has no public API to list forward hooks, so this reads the private
    registries that ``nn.Module.__call__`` consults (global ones in
    ``torch.nn.modules.module``, per-module ``_forward_hooks`` and
    ``_forward_pre_hooks``). This is the only private access in this module; if
    a torch release renames them, the ``AttributeError`` is caught and the model
    is treated as altered, so it falls back to the ``vmap`` engine.
    """
    try:
        from torch.nn.modules import module as nn_module

        hooks = (nn_module._global_forward_hooks, nn_module._global_forward_pre_hooks,
                 module._forward_hooks, module._forward_pre_hooks)
    except AttributeError:
        return True
    return any(hooks) or "forward" in vars(module)


class Chain:
    """Batched forward, loss and gradient of an MLP ensemble over flat parameters ``[M, P]``.

    Inputs are shared by all members (``x: [N, d]``, ``shared``) or per member (``x: [M, N, d]``); behind a
    leading ``nn.Flatten`` (the first layer's ``flat_input``), ``x: [N, ...]`` or ``[M, N, ...]``, whose axes after
    ``N`` are flattened into ``d``.
    """

    def __init__(self, layers: tuple[Dense, ...], layout, loss, accuracy=None):
        self.layers, self.layout, self.loss, self.accuracy = layers, layout, loss, accuracy
        starts = [0]
        for n in layout.numels:
            starts.append(starts[-1] + n)
        self.span = {name: (a, b) for name, a, b in zip(layout.names, starts[:-1], starts[1:])}
        self._loss_grad = {shared: vmap(grad_and_value(loss), in_dims=(0, None if shared else 0))
                           for shared in (True, False)}
        self._loss = {shared: vmap(loss, in_dims=(0, None if shared else 0)) for shared in (True, False)}
        self._masked_loss_grad = vmap(grad_and_value(masked(loss)), in_dims=(0, None, 0))
        self._masked_loss = vmap(masked(loss), in_dims=(0, None, 0))
        if accuracy is not None:
            self._acc = {shared: vmap(accuracy, in_dims=(0, None if shared else 0)) for shared in (True, False)}
            self._masked_acc = vmap(masked(accuracy), in_dims=(0, None, 0))

    def _param(self, theta: torch.Tensor, name: str, shape) -> torch.Tensor:
        a, b = self.span[name]
        return theta[:, a:b].view(theta.shape[0], *shape)

    def forward(self, theta: torch.Tensor, x: torch.Tensor, shared: bool = True, keep: bool = False):
        """Outputs ``[M, N, out]``; with ``keep``, also every layer's input (for ``grad``), the first one
        flattened as the model flattens it."""
        if self.layers[0].flat_input:
            x = x.flatten(1 if shared else 2)
        h = x.expand(theta.shape[0], *x.shape) if shared else x
        inputs = []
        for layer in self.layers:
            inputs.append(h)
            w = self._param(theta, layer.weight, (layer.n_out, layer.n_in)).mT
            bias = None if layer.bias is None else self._param(theta, layer.bias, (1, layer.n_out))
            h = _bmm(h, w, bias)
            if layer.activation is not None:
                h = ACTIVATIONS[layer.activation][0](h)
        return (h, inputs) if keep else h

    @torch.no_grad()
    def grad(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, shared: bool = True,
             keep: torch.Tensor | None = None):
        """``(grad [M, P], loss [M])`` of the task loss of every member; ``keep [M, N]`` (shared data): each
        member's loss over its own examples."""
        m = theta.shape[0]
        out, inputs = self.forward(theta, x, shared, keep=True)
        closed = _closed_form(self.loss, out, y)
        if keep is None:
            d, loss = (closed or self._loss_grad[shared])(out, y)
        else:
            d, loss = closed(out, y, keep) if closed else self._masked_loss_grad(out, y, keep)
        if closed is None and self.layers[-1].activation is not None:
            d = d.clone()  # torch.func's gradient, not ours to overwrite
        pieces = {}
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            if layer.activation is not None:
                # d and this layer's output are temporaries read no further: overwritten in place
                y_act = out if i == len(self.layers) - 1 else inputs[i + 1]
                d = ACTIVATIONS[layer.activation][1](d, y_act)
            pieces[layer.weight] = _bmm(d.mT, inputs[i])
            if layer.bias is not None:
                pieces[layer.bias] = d.sum(1)
            if i > 0:
                d = _bmm(d, self._param(theta, layer.weight, (layer.n_out, layer.n_in)))
        grad = torch.cat([pieces[n].reshape(m, -1) for n in self.layout.names], dim=1)
        return grad, loss

    @torch.no_grad()
    def metrics(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, shared: bool = True,
                keep: torch.Tensor | None = None):
        """``(loss [M], accuracy [M])``; accuracy is 0 for a task without one; ``keep`` as for ``grad``."""
        out = self.forward(theta, x, shared)
        if keep is not None:
            loss = self._masked_loss(out, y, keep)
            return loss, self._masked_acc(out, y, keep) if self.accuracy is not None else torch.zeros_like(loss)
        loss = self._loss[shared](out, y)
        acc = self._acc[shared](out, y) if self.accuracy is not None else torch.zeros_like(loss)
        return loss, acc
