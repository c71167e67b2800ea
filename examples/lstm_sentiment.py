"""An LSTM sentiment classifier on the loop engine
===============================================

An LSTM sentiment classifier written as Omnigrok's IMDb notebook writes it, trained by landscape on the loop engine.

The model is Omnigrok's (Liu et al. 2022) IMDb ``SentimentRNN``: an ``nn.Embedding``, an ``nn.LSTM`` with
``batch_first=True``, an ``nn.Linear(hidden, 1)`` and an ``nn.Sigmoid``; ``forward(x, hidden=None)`` returns
``(probabilities, hidden)``, so the task declares ``output=lambda out: out[0]``. The loss is binary cross-entropy
on float labels, the accuracy the share of rounded probabilities that equal the label. Inputs are a dict
``{"tokens": LongTensor [N, T] right-padded with 0, "lengths": LongTensor [N]}``; the model reads the LSTM's output
at position ``length - 1`` of each example.

Data, by default: small generated reviews (a vocabulary of 60 words, lengths 5 to 30, labelled by whether the
"positive" words outnumber the "negative" ones, 5 % of labels flipped), made from a seed, nothing downloaded.
With ``--imdb PATH`` (``make(imdb=PATH)``): the real thing, Kaggle's "IMDB Dataset of 50K Movie Reviews"
(https://www.kaggle.com/datasets/lakshmi25npathi/imdb-dataset-of-50k-movie-reviews, the file
``IMDB Dataset.csv`` with columns ``review,sentiment``); download it yourself, this example never does.

``vmap`` cannot batch ``nn.LSTM``, so the default engine (``auto``) falls back to the loop engine, one member after
the other, and says so in one line on stderr. Run it (``python examples/lstm_sentiment.py [FIGURE.png] [--imdb
PATH]``, about 15 s on two CPU cores): a short training run of two weight decays through the Python API, with the
engine and the seconds per step printed. As a task for the command line::

    PYTHONPATH=examples landscape train --task lstm_sentiment:make --steps 300
    PYTHONPATH=examples landscape train --task lstm_sentiment:make --task-opt imdb="IMDB Dataset.csv" --steps 300
"""

from __future__ import annotations

import argparse
import collections
import csv
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from landscape.tasks import Task, TaskError


class SentimentRNN(nn.Module):
    """Omnigrok's IMDb LSTM: tokens -> embedding -> LSTM -> the output at the last real token -> Linear -> Sigmoid."""

    def __init__(self, vocab_size, embedding_dim=16, hidden_dim=32, n_layers=1, output_size=1):
        super().__init__()
        self.n_layers, self.hidden_dim = n_layers, hidden_dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, n_layers, batch_first=True)
        self.fc = nn.Linear(hidden_dim, output_size)
        self.sig = nn.Sigmoid()

    def forward(self, x, hidden=None):
        tokens, lengths = x["tokens"], x["lengths"]
        embeds = self.embedding(tokens)                         # [N, T, embedding_dim]
        lstm_out, hidden = self.lstm(embeds, hidden)            # [N, T, hidden_dim]
        last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, self.hidden_dim)
        out = lstm_out.gather(1, last).squeeze(1)               # [N, hidden_dim] at position length - 1
        return self.sig(self.fc(out)).squeeze(-1), hidden       # probabilities [N], (h, c)


def bce(prob, label):
    """Binary cross-entropy of probabilities against float labels (clamped: a saturated sigmoid stays finite)."""
    p = prob.clamp(1e-7, 1 - 1e-7)
    return -(label * p.log() + (1 - label) * (1 - p).log()).mean()


def rounded_accuracy(prob, label):
    return (prob.round() == label).float().mean()


# --- generated reviews -----------------------------------------------------------------------------------------

POSITIVE = ["good", "great", "excellent", "wonderful", "superb", "moving", "brilliant", "fun", "beautiful", "loved"]
NEGATIVE = ["bad", "awful", "boring", "terrible", "dull", "waste", "worst", "poor", "weak", "hated"]
NEUTRAL = ["the", "a", "movie", "film", "plot", "actor", "actress", "scene", "story", "was", "is", "and", "but",
           "this", "it", "of", "in", "director", "music", "ending", "character", "script", "camera", "very",
           "quite", "really", "not", "so", "too", "some", "time", "watch", "cast", "long", "short", "dialogue",
           "effects", "sound", "again"]
WORDS = ["<pad>", *POSITIVE, *NEGATIVE, *NEUTRAL]  # index 0 pads; 60 words in all


def generated(n: int, seed: int, min_len: int = 5, max_len: int = 30, noise: float = 0.05):
    """``n`` reviews of 5..30 tokens: label 1 where the positive words outnumber the negative ones (ties drawn at
    random), then a share ``noise`` of the labels flipped."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=g)
    tokens = torch.zeros(n, max_len, dtype=torch.long)
    kind = torch.multinomial(torch.tensor([0.15, 0.15, 0.70]), n * max_len, replacement=True, generator=g)
    kind = kind.view(n, max_len)
    offset = torch.tensor([1, 1 + len(POSITIVE), 1 + len(POSITIVE) + len(NEGATIVE)])
    size = torch.tensor([len(POSITIVE), len(NEGATIVE), len(NEUTRAL)])
    pick = (torch.rand(n, max_len, generator=g) * size[kind]).long()
    words = offset[kind] + pick
    real = torch.arange(max_len)[None] < lengths[:, None]
    tokens[real] = words[real]
    pos = ((kind == 0) & real).sum(1)
    neg = ((kind == 1) & real).sum(1)
    tie = torch.rand(n, generator=g) < 0.5
    label = torch.where(pos == neg, tie, pos > neg).float()
    flip = torch.rand(n, generator=g) < noise
    label = torch.where(flip, 1 - label, label)
    return {"tokens": tokens, "lengths": lengths}, label


# --- the real IMDb reviews -------------------------------------------------------------------------------------

def words_of(text: str) -> list[str]:
    """Lower case, HTML line breaks and every non-word character gone, split on white space."""
    text = re.sub(r"<br\s*/?>", " ", text.lower())
    return re.sub(r"[^\w\s]|_", " ", text).split()


def encode(reviews: list[list[str]], index: dict[str, int], seq_len: int):
    """Token ids (unknown words dropped, as Omnigrok's notebook does), truncated to ``seq_len`` and right-padded."""
    tokens = torch.zeros(len(reviews), seq_len, dtype=torch.long)
    lengths = torch.ones(len(reviews), dtype=torch.long)
    for i, words in enumerate(reviews):
        ids = [index[w] for w in words if w in index][:seq_len] or [0]
        tokens[i, :len(ids)] = torch.tensor(ids)
        lengths[i] = len(ids)
    return {"tokens": tokens, "lengths": lengths}


def load_imdb(path: str, n_train: int, n_test: int, vocab: int, seq_len: int, seed: int):
    """Kaggle's ``IMDB Dataset.csv`` (``review,sentiment``): a seeded shuffle, ``n_train`` and ``n_test`` reviews,
    the ``vocab - 1`` commonest words of the training split (0 pads), ``seq_len`` tokens at most."""
    if not Path(path).is_file():
        raise TaskError(f"lstm_sentiment: no file {path!r}; download 'IMDB Dataset.csv' from Kaggle "
                        "(lakshmi25npathi/imdb-dataset-of-50k-movie-reviews) and pass its path")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"review", "sentiment"} <= set(rows[0]):
        raise TaskError(f"lstm_sentiment: {path!r} needs the columns review,sentiment")
    if n_train + n_test > len(rows):
        raise TaskError(f"lstm_sentiment: {path!r} has {len(rows)} reviews, asked for {n_train} + {n_test}")
    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    rows = [rows[i] for i in order[:n_train + n_test]]
    texts = [words_of(r["review"]) for r in rows]
    labels = torch.tensor([r["sentiment"].strip().lower() == "positive" for r in rows], dtype=torch.float32)
    counts = collections.Counter(w for words in texts[:n_train] for w in words)
    index = {w: i + 1 for i, (w, _) in enumerate(counts.most_common(vocab - 1))}
    x = encode(texts, index, seq_len)
    train = {k: v[:n_train] for k, v in x.items()}
    test = {k: v[n_train:] for k, v in x.items()}
    return train, labels[:n_train], test, labels[n_train:]


def make(n_train: int = 256, n_test: int = 256, embedding_dim: int = 16, hidden_dim: int = 32, seed: int = 0,
         imdb: str = "", vocab: int = 1000, seq_len: int = 200) -> Task:
    """An Omnigrok-style LSTM on generated reviews (or, with ``imdb=PATH``, on Kaggle's IMDb reviews, keeping the
    ``vocab`` commonest training words and ``seq_len`` tokens)."""
    if imdb:
        x_train, y_train, x_test, y_test = load_imdb(imdb, n_train, n_test, vocab, seq_len, seed)
        size = vocab
    else:
        x_train, y_train = generated(n_train, seed)
        x_test, y_test = generated(n_test, seed + 10_000)
        size = len(WORDS)
    return Task("lstm-sentiment", lambda: SentimentRNN(size, embedding_dim, hidden_dim), x_train, y_train,
                x_test, y_test, loss=bce, accuracy=rounded_accuracy, output=lambda out: out[0])


def main(figure: str, imdb: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import landscape as ls

    task = make(imdb=imdb)
    steps = 300
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()  # not quiet: the fallback note goes to stderr (no progress bar off a terminal)
        run = ls.train(task, out=Path(d) / "lstm.h5", steps=steps, lr=3e-3, weight_decay=[0.0, 0.1],
                       batch_size=64, log_every=30, threads=1)  # a small LSTM: one thread beats two
        seconds = time.perf_counter() - t0
    members = run.sizes["trajectory"]
    print(f"engine {run.attrs['engine']}: {members} trajectories x {steps} steps in {seconds:.1f} s, "
          f"{seconds / steps:.4f} s per step ({seconds / steps / members:.4f} s per member-step)")
    for wd in run.weight_decay.values:
        end = run.sel(trajectory=run.weight_decay == wd).isel(trajectory=0, step=-1)
        print(f"weight decay {float(wd):g}: train accuracy {float(end.train_acc):.3f}, "
              f"test accuracy {float(end.test_acc):.3f}, test loss {float(end.test_loss):.3g}")
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    for i in range(members):
        one = run.isel(trajectory=i)
        wd = float(one.weight_decay)
        ax[0].plot(one.step, one.train_loss, label=f"train, wd {wd:g}")
        ax[0].plot(one.step, one.test_loss, "--", label=f"test, wd {wd:g}")
        ax[1].plot(one.step, one.test_acc, label=f"test, wd {wd:g}")
    ax[0].set(xlabel="step", ylabel="BCE loss", title="Omnigrok-style LSTM, sentiment")
    ax[0].legend(fontsize=8)
    ax[1].set(xlabel="step", ylabel="accuracy", title="test accuracy")
    ax[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figure, dpi=110)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description='An LSTM sentiment classifier on the loop engine')
    ap.add_argument("figure", nargs="?", default="lstm_sentiment.png")
    ap.add_argument("--imdb", default="", metavar="PATH", help="Kaggle's 'IMDB Dataset.csv' (never downloaded)")
    args = ap.parse_args()
    main(args.figure, args.imdb)
