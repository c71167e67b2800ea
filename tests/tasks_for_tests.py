"""Small task factories used by the tests through the ``package.module:function`` contract."""

import torch

from landscape.tasks import Task, mse


def tiny(seed: int = 0, n: int = 32):
    """A 3-8-1 tanh regression, fast enough for subprocess tests."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2 * n, 3, generator=g)
    y = torch.sin(x.sum(1, keepdim=True))

    def model():
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    return Task("tiny", model, x[:n], y[:n], x[n:], y[n:], loss=mse)


def explosive(seed: int = 0, limit: float = 20.0):
    """Like ``tiny`` but the loss is NaN once any output exceeds ``limit``: large norms diverge."""
    task = tiny(seed)

    def loss(out, target):
        value = mse(out, target)
        return torch.where(out.abs().max() > limit, torch.full_like(value, float("nan")), value)

    task.loss = loss
    return task


def not_a_task():
    return 42


def flat(seed: int = 0):
    """``tiny`` with a loss whose gradient is exactly zero: only weight decay moves the weights."""
    task = tiny(seed)
    task.loss = lambda out, target: 0.0 * out.sum()
    return task


def raising(seed: int = 0):
    """``tiny`` whose loss raises: an error in the user's task code."""
    task = tiny(seed)

    def loss(out, target):
        raise RuntimeError("my loss is broken")

    task.loss = loss
    return task


def wrong_width(seed: int = 0):
    """``tiny`` whose model expects 4 inputs, not the data's 3."""
    task = tiny(seed)
    task.model = lambda: torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    return task


def tiny_head(seed: int = 0, n: int = 32, keep: int = 16):
    """``tiny`` trained on the first ``keep`` training examples only (same test set)."""
    task = tiny(seed, n)
    task.x_train, task.y_train = task.x_train[:keep], task.y_train[:keep]
    return task


class _Broken(torch.nn.Module):
    """A model whose forward pass fails, as a bug in a user's model would."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, x):
        raise RuntimeError(f"this model cannot take an input of shape {tuple(x.shape)}")


def broken_model(seed: int = 0):
    """``tiny``'s data with a model that raises in its forward pass."""
    task = tiny(seed)
    task.model = _Broken
    return task


class _Sentiment(torch.nn.Module):
    """An LSTM classifier shaped like Omnigrok's IMDB model (embedding, LSTM, linear, sigmoid): no vmap rule."""

    def __init__(self, vocab: int = 12):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, 4)
        self.lstm = torch.nn.LSTM(4, 6, batch_first=True)
        self.fc = torch.nn.Linear(6, 1)

    def forward(self, x):
        out, _ = self.lstm(self.embedding(x))
        return torch.sigmoid(self.fc(out[:, -1]))


def lstm(seed: int = 0, n: int = 24):
    """Token sequences labelled by whether most tokens are small; BCE loss; runs on the loop engine only."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 12, (2 * n, 6), generator=g)
    y = ((x < 6).sum(1) > 3).float()[:, None]

    def bce(out, target):
        return torch.nn.functional.binary_cross_entropy(out, target)

    def acc(out, target):
        return ((out > 0.5).float() == target).float().mean()

    return Task("lstm", _Sentiment, x[:n], y[:n], x[n:], y[n:], loss=bce, accuracy=acc)


class _Flaky(torch.nn.Module):
    """``tiny``'s model that fails after ``limit`` forward passes (counted over all copies): a run that breaks
    midway, after checkpoints were written."""

    calls = 0
    limit = 10**9

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def forward(self, x):
        type(self).calls += 1
        if type(self).calls > type(self).limit:
            raise RuntimeError("this model broke midway")
        return self.net(x)


def flaky(seed: int = 0, limit: int = 40):
    """``tiny`` whose model raises after ``limit`` forward passes in this process (train it on the loop engine)."""
    task = tiny(seed)
    _Flaky.calls, _Flaky.limit = 0, limit
    task.model = _Flaky
    return task


class _Pair(torch.nn.Module):
    """A model that returns ``(output, hidden)``, as recurrent research code does."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.lin(x), torch.zeros(1)


def pair(seed: int = 0, adapt: bool = False):
    """``tiny``'s data with a model returning a tuple; ``adapt``: the task declares ``output``."""
    task = tiny(seed)
    task.model = _Pair
    task.output = (lambda out: out[0]) if adapt else None
    return task


class _NeedsHidden(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def forward(self, x, hidden):
        return self.lin(x)


def needs_hidden(seed: int = 0):
    """``tiny``'s data with a model whose ``forward(x, hidden)`` needs two arguments."""
    task = tiny(seed)
    task.model = _NeedsHidden
    return task


class _OnceSquare(torch.autograd.Function):
    """x^2 whose backward autograd cannot differentiate again (``once_differentiable``)."""

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return 2 * x * g


class _OnceNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(3, 8), torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.b(_OnceSquare.apply(self.a(x)))


def once_differentiable(seed: int = 0):
    """``tiny``'s data on a model with a layer autograd differentiates only once: its Hessian cannot be had."""
    task = tiny(seed)
    task.model = _OnceNet
    return task
