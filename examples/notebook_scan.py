"""A notebook session: your own model, its landscape, a run on it
==============================================================

A notebook session with landscape: your own model and data, the reduced landscape, a grokking run on top of it.

Run it as a script (``python examples/notebook_scan.py [FIGURE.png]``) or paste the cells into Jupyter. It defines a
small regression task inline, scans train and test loss against the weight norm, trains one run from a large
initial norm with weight decay, reads both back as labelled xarray data, and draws the run over the L and the U.
About 30 s on two CPU cores.
"""

import sys

import matplotlib

matplotlib.use("Agg")  # a script draws into a file; in Jupyter leave the backend alone
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import landscape as ls  # noqa: E402

# %% Your task: a teacher network labels random inputs; the student is the same architecture.
torch.manual_seed(0)
teacher = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
x = torch.randn(140, 4)
with torch.no_grad():
    y = teacher(x)


def student():
    return torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2))


def mse(output, target):
    return ((output - target) ** 2).mean()


task = ls.Task("notebook-teacher", student, x[:40], y[:40], x[40:], y[40:], loss=mse)

# %% The reduced landscape: 14 norms from 0.2 to 6 times the default initialization's, two restarts each.
scan = ls.scan(task, norms="0.2:6:14:log", restarts=2, steps=1500, lr=0.01, quiet=True)
best = scan.min("restart")  # the better restart at every norm
print(best[["alpha", "train_loss", "test_loss"]].to_dataframe().round(5))
w_star = float(best.test_loss.idxmin("norm"))
print(f"test loss is lowest at norm {w_star:.2f}:",
      scan.sel(norm=w_star, method="nearest")[["alpha", "train_loss", "test_loss"]].mean("restart").to_dict()["data_vars"]
      ["test_loss"]["data"])

# %% A run that starts at 5 times the default norm: it fits at once, then weight decay carries it down the U.
run = ls.train(task, init_scale=5, weight_decay=0.3, lr=0.01, steps=3000, quiet=True).squeeze("trajectory")
end = run.isel(step=-1)
print(f"the run: norm {float(run.constrained_norm[0]):.2f} -> {float(end.constrained_norm):.2f}, "
      f"test loss {float(run.test_loss[0]):.3g} -> {float(end.test_loss):.3g}")

# %% Draw the run over the landscape.
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(best.norm, best.train_loss, "o-", color="tab:blue", label="train loss (reduced landscape)")
ax.plot(best.norm, best.test_loss, "o-", color="tab:orange", label="test loss (reduced landscape)")
ax.plot(run.constrained_norm, run.test_loss, color="tab:orange", alpha=0.5, lw=3, label="the run's test loss")
ax.plot(run.constrained_norm, run.train_loss, color="tab:blue", alpha=0.5, lw=3, label="the run's train loss")
ax.annotate("start", (float(run.constrained_norm[0]), float(run.test_loss[0])))
ax.annotate("end", (float(end.constrained_norm), float(end.test_loss)))
ax.set(xscale="log", yscale="log", xlabel="weight norm $w$", ylabel="loss",
       title="An inline task's L and U, with a weight-decay run on them")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[1] if len(sys.argv) > 1 else "notebook_scan.png", dpi=120)
