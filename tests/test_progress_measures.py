"""Nanda et al.'s restricted and excluded losses on logits with a known answer, and where they apply."""

import math

import pytest
import torch
import torch.nn.functional as F

from landscape import metrics
from landscape.metrics.progress import progress
from landscape.tasks import get_task

P = 23


def _pairs(train: int = 200, seed: int = 0):
    a, b = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    s = (a.flatten() + b.flatten()) % P
    perm = torch.randperm(P * P, generator=torch.Generator().manual_seed(seed))
    return s, perm[:train], perm[train:]


def _wave_logits(s: torch.Tensor, amplitudes: dict[int, float]) -> torch.Tensor:
    """Logits sum_k A_k cos(w_k (a + b - c)) + 0.7 (a constant): the grokked algorithm, over every pair."""
    c = torch.arange(P, dtype=torch.float64)
    z = torch.full((len(s), P), 0.7, dtype=torch.float64)
    for k, amp in amplitudes.items():
        z = z + amp * torch.cos(2 * math.pi * k * (s[:, None].double() - c) / P)
    return z


def _split(z, s, tr, te):
    return {"train": z[:, tr], "test": z[:, te]}, {"train": s[tr], "test": s[te]}


def test_logits_made_of_the_key_waves_keep_their_loss_restricted_and_lose_it_excluded():
    s, tr, te = _pairs()
    z = _wave_logits(s, {3: 5.0, 7: 3.0})[None]
    logits, sums = _split(z, s, tr, te)
    key = torch.tensor([[3.0, 7.0, 1.0, 2.0, float("nan")]], dtype=torch.float64)  # a NaN key is skipped
    restricted, excluded = progress(logits, sums, key, P)
    torch.testing.assert_close(restricted["test"], logits["test"])  # nothing outside the key directions
    torch.testing.assert_close(excluded["train"], torch.zeros_like(logits["train"]) + 0.7)  # only the constant
    assert F.cross_entropy(excluded["train"][0], s[tr]).item() == pytest.approx(math.log(P))  # chance


def test_keys_other_than_the_logits_frequencies_restrict_to_chance():
    s, tr, te = _pairs()
    z = _wave_logits(s, {3: 5.0, 7: 3.0})[None]
    logits, sums = _split(z, s, tr, te)
    restricted, excluded = progress(logits, sums, torch.tensor([[1.0, 2.0, 4.0, 5.0, 6.0]], dtype=torch.float64), P)
    assert F.cross_entropy(restricted["test"][0], s[te]).item() == pytest.approx(math.log(P))
    torch.testing.assert_close(excluded["train"], logits["train"])


def test_memorizing_logits_keep_their_fit_excluded_and_stay_poor_restricted():
    # against the grokked logits above (excluded: chance, 3.1; restricted: their own 0.34)
    s, tr, te = _pairs()
    g = torch.Generator().manual_seed(4)
    z = 8.0 * F.one_hot(s, P).double() + torch.randn(len(s), P, generator=g, dtype=torch.float64)
    z[te] = torch.randn(len(te), P, generator=g, dtype=torch.float64)  # a lookup table: nothing off the train set
    logits, sums = _split(z[None], s, tr, te)
    restricted, excluded = progress(logits, sums, torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]], dtype=torch.float64), P)
    full = F.cross_entropy(logits["train"][0], s[tr]).item()  # 0.02
    assert F.cross_entropy(excluded["train"][0], s[tr]).item() < full + 0.1  # the table does not need the waves
    # the table's labels are a function of a + b, so some of it lies on the waves: 2.0, not chance, but far
    # from a grokked network's
    assert F.cross_entropy(restricted["test"][0], s[te]).item() > 1.5


def test_batched_equals_one_member_at_a_time():
    s, tr, te = _pairs()
    g = torch.Generator().manual_seed(1)
    z = torch.stack([_wave_logits(s, {3: 5.0}), torch.randn(P * P, P, generator=g, dtype=torch.float64),
                     _wave_logits(s, {2: 1.0, 9: 4.0}) + 0.5 * torch.randn(P * P, P, generator=g, dtype=torch.float64)])
    key = torch.tensor([[3.0, 1, 2, 4, 5], [6.0, 7, 8, 9, 10], [9.0, 2, 11, 1, 3]], dtype=torch.float64)
    logits, sums = _split(z, s, tr, te)
    r, e = progress(logits, sums, key, P)
    for j in range(3):
        rj, ej = progress({k: v[j:j + 1] for k, v in logits.items()}, sums, key[j:j + 1], P)
        for split in ("train", "test"):
            torch.testing.assert_close(r[split][j], rj[split][0])
            torch.testing.assert_close(e[split][j], ej[split][0])


def test_they_apply_to_modular_addition_only():
    known = {m.name: m for m in metrics.registered()}
    for name in ("restricted_loss", "excluded_loss"):
        assert known[name].applies(get_task("modular", {"p": 7})) is None
        assert "addition" in known[name].applies(get_task("modular", {"p": 7, "op": "*"}))
        assert "modular" in known[name].applies(get_task("teacher-student"))
