"""K copies of one model as one batched computation, with ``torch.func``.

The parameters of every member live in one flat tensor ``theta: [M, P]``; a
:class:`~landscape.engine.layout.Layout` maps the flat vector of one member to the model's named
parameters. ``functional_call`` runs the model with those parameters and
``vmap`` batches it over members, so one forward and one backward serve the
whole ensemble. The constrained scan and free training both use this engine: a
sweep over norms, restarts, weight decays or seeds is just a larger ensemble.

When the model is a plain MLP (``landscape.engine.mlp.chain_of``), the same batched
computation is written out by hand instead (engine ``"mlp"``), which avoids
``vmap``'s and autograd's per-call overhead; ``"auto"`` picks it when it
applies, and falls back to ``"loop"`` for a model ``vmap`` cannot batch
(:func:`resolve_engine`, tried on two examples before any step). ``"loop"`` is the reference the others are checked against:
one member at a time with ordinary autograd, as a training script would do it.
All give the same numbers to float rounding.
"""

from __future__ import annotations

import copy
import warnings
import torch
from torch.func import functional_call, grad_and_value, vmap

from . import mlp
from .layout import Layout, flatten
from ..errors import one_line
from ..tasks import Task, inputs
from ..tasks.contract import Probe, adapted, hook

# --engine: what each name computes (the config's rule, the CLI's choices and its --help read this)
ENGINES = {
    "auto": "mlp for plain MLPs, else vmap, else (a model vmap cannot batch) loop",
    "mlp": "hand-batched MLP ensemble",
    "vmap": "torch.func ensemble, any model",
    "loop": "one member at a time with ordinary autograd (the reference)",
}


def _mlp_fits(module: torch.nn.Module, layout: Layout, task: Task | None) -> bool:
    """A plain MLP (``mlp.chain_of``) on one input tensor whose output the loss reads as it is."""
    if task is not None and (task.output is not None or not inputs.is_tensor(task.x_train)):
        return False
    return mlp.chain_of(module, layout) is not None


def check_engine(module: torch.nn.Module, layout: Layout, engine: str, task: Task | None = None) -> None:
    """Raise ``ValueError`` when ``engine`` cannot run this model."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if engine == "mlp" and not _mlp_fits(module, layout, task):
        raise ValueError(f"the mlp engine needs a plain MLP (nn.Sequential of nn.Linear layers and "
                         f"{', '.join(a.__name__ for a in mlp.ACTIVATIONS)}, nn.Flatten in front, nn.Identity "
                         "anywhere; on one input tensor, without Task.output); use --engine vmap or auto")


def functional_forward(module, layout, theta: torch.Tensor, x, probe: Probe | None = None, task: Task | None = None):
    """``(outputs [M, N, ...], what the probe reads [M, N, h] or None)`` of every member ``theta: [M, P]``:
    ``vmap`` over ``functional_call``, a forward hook on the probe's module reading its input or output
    (``Probe.read``); the outputs as ``task``'s loss reads them (``Task.output``)."""
    rows = len(next(iter(inputs.leaves(x)))[1])

    def one(flat, x):
        seen: list = []
        handle = None if probe is None else hook(module, probe, seen)
        try:
            out = functional_call(module, layout.unflatten(flat), (x,))
        finally:
            if handle is not None:
                handle.remove()
        out = out if task is None else adapted(task, out)
        return out, (probe.read(seen[0], rows) if seen else torch.zeros(rows, 0, device=out.device))

    out, hidden = vmap(one, in_dims=(0, None))(theta, x)
    return out, (hidden if probe is not None else None)


def _loss_of(task: Task, module: torch.nn.Module, layout: Layout):
    """One member's loss as a function of its flat parameters: ``loss(flat, x, y, keep=None)``."""
    def loss(flat, x, y, keep=None):
        return task.member_loss(adapted(task, functional_call(module, layout.unflatten(flat), (x,))), y, keep)
    return loss


class _Vmap:
    """Any model: ``vmap(grad_and_value(functional_call))`` over the members."""

    def __init__(self, task: Task, module: torch.nn.Module, layout: Layout):
        loss = _loss_of(task, module, layout)

        def metrics(flat, x, y, keep=None):
            return task.member_metrics(adapted(task, functional_call(module, layout.unflatten(flat), (x,))), y, keep)

        self._grad = {True: vmap(grad_and_value(loss), in_dims=(0, None, None)),
                      False: vmap(grad_and_value(loss), in_dims=(0, 0, 0))}
        self._masked_grad = vmap(grad_and_value(loss), in_dims=(0, None, None, 0))
        self._metrics = vmap(metrics, in_dims=(0, None, None))
        self._masked_metrics = vmap(metrics, in_dims=(0, None, None, 0))

    def grad(self, theta, x, y, shared=True, keep=None):
        if keep is not None:
            return self._masked_grad(theta, x, y, keep)
        return self._grad[shared](theta, x, y)

    def metrics(self, theta, x, y, keep=None):
        return self._metrics(theta, x, y) if keep is None else self._masked_metrics(theta, x, y, keep)


def _batched_hessian(task: Task, module: torch.nn.Module, layout: Layout, theta, x, y, keep=None):
    """Every member's Hessian-vector product at ``theta [M, P]``: the members' losses by ``vmap`` over
    ``functional_call``, their gradient's graph built once (``create_graph``), and each call ``vs [M, S, P] ->
    [M, S, P]`` one more backward pass through it, batched over the S vectors (``is_grads_batched``; one vector
    after the other where the backward pass has an op ``vmap`` cannot batch)."""
    loss = _loss_of(task, module, layout)
    th = theta.detach().requires_grad_(True)
    with torch.enable_grad():
        args, dims = ((th, x, y), (0, None, None)) if keep is None else ((th, x, y, keep), (0, None, None, 0))
        g, = torch.autograd.grad(vmap(loss, in_dims=dims)(*args).sum(), th, create_graph=True)
    one_by_one = []

    def products(vs: torch.Tensor) -> torch.Tensor:
        if not g.requires_grad:  # a loss linear in every parameter: a zero Hessian
            return torch.zeros_like(vs)
        if not one_by_one:
            try:
                out, = torch.autograd.grad(g, th, vs.transpose(0, 1), retain_graph=True, is_grads_batched=True)
                return out.transpose(0, 1)
            except RuntimeError as e:  # vmap has no batching rule for an op of the backward pass
                if isinstance(e, torch.OutOfMemoryError):
                    raise
                one_by_one.append(e)
        return torch.stack([torch.autograd.grad(g, th, v, retain_graph=True)[0] for v in vs.unbind(1)], 1)
    return products


class _Loop:
    """The reference: one member at a time, ordinary autograd on the ``nn.Module`` (each member's parameters
    copied into the module's own, whatever storage a module such as ``nn.LSTM`` gave them)."""

    def __init__(self, task: Task, module: torch.nn.Module, layout: Layout):
        self.task, self.module, self.layout = task, module, layout
        params = dict(module.named_parameters())
        self.ordered = [params[n] for n in layout.names]
        self.sizes = [p.numel() for p in self.ordered]

    def load(self, flat: torch.Tensor) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.ordered, [v.view(p.shape) for p, v in zip(self.ordered, flat.split(self.sizes))])

    def grad(self, theta, x, y, shared=True, keep=None):
        grads, losses = [], []
        for j in range(theta.shape[0]):
            self.load(theta[j])
            for p in self.ordered:
                p.grad = None
            out = adapted(self.task, self.module(x if shared else inputs.take(x, j)))
            loss = self.task.member_loss(out, y if shared else y[j], None if keep is None else keep[j])
            loss.backward()
            # a parameter the loss does not reach has no .grad: its gradient is zero, as vmap's
            grads.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                    for p in self.ordered]))
            losses.append(loss.detach())
        return torch.stack(grads), torch.stack(losses)

    def forward(self, theta, x, probe: Probe | None = None):
        """As :func:`functional_forward`, one member after the other on the module itself."""
        rows = len(next(iter(inputs.leaves(x)))[1])
        outs, hidden = [], []
        for j in range(theta.shape[0]):
            self.load(theta[j])
            seen: list = []
            handle = None if probe is None else hook(self.module, probe, seen)
            try:
                outs.append(adapted(self.task, self.module(x)))
            finally:
                if handle is not None:
                    handle.remove()
            if probe is not None:
                hidden.append(probe.read(seen[0], rows))
        return torch.stack(outs), (torch.stack(hidden) if probe is not None else None)

    def metrics(self, theta, x, y, keep=None):
        out, _ = self.forward(theta, x)
        return member_metrics(self.task, out, y, keep, batched=False)

    def hvp(self, theta, vs, x, y, keep=None):
        """Hessian-vector products ``[M, S, P]``, member after member, by double backward on the module."""
        rows = []
        for j in range(theta.shape[0]):
            self.load(theta[j])
            with torch.enable_grad():
                loss = self.task.member_loss(adapted(self.task, self.module(x)), y, None if keep is None else keep[j])
                parts = torch.autograd.grad(loss, self.ordered, create_graph=True, allow_unused=True)
                g = torch.cat([(d if d is not None else torch.zeros_like(p)).reshape(-1)
                               for d, p in zip(parts, self.ordered)])
                out = []
                for v in vs[j]:
                    if not g.requires_grad:  # a loss linear in every parameter: a zero Hessian
                        out.append(torch.zeros_like(v))
                        continue
                    hv = torch.autograd.grad(g, self.ordered, v, retain_graph=True, allow_unused=True)
                    out.append(torch.cat([(d if d is not None else torch.zeros_like(p)).reshape(-1)
                                          for d, p in zip(hv, self.ordered)]))
            rows.append(torch.stack(out))
        return torch.stack(rows)


def member_metrics(task: Task, out: torch.Tensor, y: torch.Tensor, keep: torch.Tensor | None = None,
                   batched: bool = True):
    """``(loss [M], accuracy [M])`` of every member's outputs ``out [M, N, ...]`` against the shared ``y``
    (member j over its ``keep[j]`` examples when given): ``vmap`` over the members, or (``batched=False``, the
    loop engine's, whose loss need not be batchable) one member after the other."""
    if batched:
        args, dims = ((out, y), (0, None)) if keep is None else ((out, y, keep), (0, None, 0))
        return vmap(task.member_metrics, in_dims=dims)(*args)
    pairs = [task.member_metrics(out[j], y, None if keep is None else keep[j]) for j in range(out.shape[0])]
    return torch.stack([loss for loss, _ in pairs]), torch.stack([acc for _, acc in pairs])


def engine_of(module: torch.nn.Module, layout: Layout, engine: str, task: Task | None = None) -> str:
    """The engine :class:`Ensemble` runs this model on under ``--engine engine``: ``mlp``, ``vmap`` or ``loop``
    (``auto`` after :func:`resolve_engine` chose it, so ``auto`` here means a model ``vmap`` batches)."""
    if engine in ("auto", "mlp") and _mlp_fits(module, layout, task):
        return "mlp"
    return "loop" if engine == "loop" else "vmap"


def _two(task: Task, module: torch.nn.Module, layout: Layout):
    """Two members (copies of the module's parameters) and the first two training examples (one, when the split
    has one): what the engine checks run on."""
    theta = flatten(module, layout).expand(2, -1).clone()
    return theta, inputs.take(task.x_train, slice(0, 2)), task.y_train[:2]


def batch_failure(task: Task, module: torch.nn.Module, layout: Layout) -> str | None:
    """Why ``vmap`` cannot run this model (the error, one line), or None: the gradient of two members on two
    training examples, shared by both and one minibatch each, then the metrics' forward pass."""
    theta, x, y = _two(task, module, layout)
    pick = torch.tensor([[0, 1], [1, 0]]) % len(y)
    impl = _Vmap(task, module, layout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's "performance drop" notes on its slow fallbacks: tried only
            impl.grad(theta, x, y)
            impl.grad(theta, inputs.take(x, pick), y[pick], shared=False)
            with torch.no_grad():
                out, _ = functional_forward(module, layout, theta, x, task=task)
                member_metrics(task, out, y)
    except Exception as e:  # noqa: BLE001 -- whatever vmap refuses: a batching rule, control flow, in-place ops
        text = one_line(e)
        return f"{type(e).__name__}: {text[:160] + '...' if len(text) > 160 else text}"
    return None


def resolve_engine(task: Task, module: torch.nn.Module, layout: Layout, engine: str) -> tuple[str, str | None]:
    """``(engine to run, note or None)``: ``auto`` on a model ``vmap`` cannot batch becomes ``loop``, with a
    one-line note saying why; ``vmap`` on such a model is a ``ValueError``. The loop engine is tried on the same
    examples first: a model that fails there too has an error of its own."""
    if engine not in ("auto", "vmap") or engine_of(module, layout, engine, task) != "vmap":
        return engine, None
    why = batch_failure(task, module, layout)
    if why is None:
        return engine, None
    theta, x, y = _two(task, module, layout)
    _Loop(task, copy.deepcopy(module), layout).grad(theta, x, y)
    if engine == "vmap":
        raise ValueError(f"--engine vmap cannot batch this model or its loss ({why}); use --engine auto or loop, "
                         "which run it one member after the other")
    return "loop", (f"engine auto: vmap cannot batch this model or its loss ({why}); it runs on the loop engine, "
                    "one member after the other")


class Ensemble:
    """Loss, gradient and metrics of one model architecture over ``theta: [M, P]``.

    ``engine``: one of ``ENGINES``: ``"mlp"`` (hand-batched, plain MLPs only,
    ``landscape.engine.mlp``), ``"vmap"`` (``torch.func``, any model), ``"auto"``
    (``mlp`` when the model qualifies, else ``vmap``) or ``"loop"`` (one member
    after the other with ordinary autograd: the reference). ``self.engine``
    says which one runs.
    """

    def __init__(self, task: Task, module: torch.nn.Module, layout: Layout, engine: str = "auto"):
        self.task, self.module, self.layout = task, module, layout
        check_engine(module, layout, engine, task)
        self.engine = engine_of(module, layout, engine, task)
        if self.engine == "mlp":
            self._impl = mlp.Chain(mlp.chain_of(module, layout), layout, task.loss, task.accuracy)
        elif self.engine == "loop":
            self._impl = _Loop(task, module, layout)
        else:
            self._impl = _Vmap(task, module, layout)

    def hessian(self, theta: torch.Tensor, x, y: torch.Tensor, keep: torch.Tensor | None = None):
        """The Hessian of every member's loss on ``x``, ``y`` (member j's over its ``keep[j]`` examples) at
        ``theta [M, P]``, as a function ``vs [M, S, P] -> [M, S, P]`` (member j's Hessian times each of its vectors
        ``vs[j]``): batched by double backward through the gradient's graph, built once (the ``mlp`` engine's models
        run through ``torch.func.functional_call`` here); on the ``loop`` engine member after member."""
        if self.engine == "loop":
            return lambda vs: self._impl.hvp(theta, vs, x, y, keep)
        return _batched_hessian(self.task, self.module, self.layout, theta, x, y, keep)

    @property
    def chain(self) -> mlp.Chain | None:
        """The hand-batched MLP on the ``mlp`` engine, else None."""
        return self._impl if self.engine == "mlp" else None

    @property
    def batched(self):
        """The batched gradient, ``grad(theta, x, y, shared=True, keep=None) -> (grad, loss)``, of the ``mlp`` or
        ``vmap`` engine (``landscape.engine.whole_step`` compiles it), None on the ``loop`` engine."""
        return None if self.engine == "loop" else self._impl

    def grad(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, per_member: bool = False,
             keep: torch.Tensor | None = None):
        """``(grad [M, P], loss [M])``; ``per_member`` when ``x``/``y`` carry a leading member axis; ``keep
        [M, N]`` (shared data only): member j's loss is the mean over the examples where ``keep[j]`` is 1."""
        return self._impl.grad(theta, x, y, shared=not per_member, keep=keep)

    @torch.no_grad()
    def metrics(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor | None = None):
        """``(loss [M], accuracy [M])`` on the shared data ``x``, ``y`` (accuracy 0 for regression), each
        member's over its ``keep`` examples when given."""
        return self._impl.metrics(theta, x, y, keep=keep)

    @torch.no_grad()
    def forward(self, theta: torch.Tensor, x, probe: Probe | None = None):
        """``(outputs [M, N, ...], what ``probe`` reads [M, N, h] or None)`` on the shared ``x``: the
        hand-batched pass where the probe reads the MLP's last layer's input (the ``mlp`` engine), one member after
        the other on the ``loop`` engine, else ``vmap``."""
        last = self._impl.layers[-1].weight.rsplit(".", 1)[0] if self.engine == "mlp" else None
        if self.engine == "mlp" and (probe is None or (probe.layer, probe.at, probe.map) == (last, "input", None)):
            out, seen = self._impl.forward(theta, x, keep=True)
            return out, (seen[-1] if probe is not None else None)
        if self.engine == "loop":
            return self._impl.forward(theta, x, probe)
        return functional_forward(self.module, self.layout, theta, x, probe, task=self.task)
