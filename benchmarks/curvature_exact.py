"""A float32 ``scan --curvature`` against the Riemannian Hessian formed explicitly in float64 at its minimizers.

    python benchmarks/curvature_exact.py [--width 20] [--lanczos N] [--norms 0.25:4:5:log] [--steps 1000]

The teacher-student task at a small width (20: 645 parameters, so the explicit Hessian is cheap) is scanned with
``--curvature 5 --save-params`` (``--lanczos`` N iterations; default: the scan's own default, 30), then at each stored
minimizer the Hessian of the training loss is formed with ``torch.func.hessian`` in float64, projected on the
sphere's tangent space with its curvature term (P H P - (<g, theta> / w^2) P) and diagonalized. Printed per norm: the
largest relative error of the top five eigenvalues, the smallest Ritz value against the smallest eigenvalue, the
Lanczos residual bound, and the Hutchinson trace against the exact trace in standard errors. ``--lanczos 644`` runs
Lanczos over the whole tangent space.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.func import functional_call, grad, hessian

from landscape.engine.layout import layout_of
from landscape.tasks import get_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=20)
    p.add_argument("--lanczos", type=int)
    p.add_argument("--norms", default="0.25:4:5:log")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "exact.h5"
        subprocess.run([sys.executable, "-m", "landscape", "scan", "--task", "teacher-student", "--task-opt",
                        f"width={a.width}", "--norms", a.norms, "--steps", str(a.steps), "--curvature", "5",
                        "--save-params", "--threads", str(a.threads), "--quiet", "--out", str(out),
                        *([] if a.lanczos is None else ["--lanczos", str(a.lanczos)])], check=True)
        with h5py.File(out) as h:
            params, norm = h["scan/params"][:, 0], h["scan/norm"][()]
            c = {k: h[f"scan/curvature/{k}"][:, 0] for k in ("top", "smallest", "residual", "trace", "trace_se")}
            m = h["scan/curvature/ritz"].shape[0]
    task = get_task("teacher-student", {"width": a.width})
    module = task.model().double()
    layout = layout_of(module, "*")
    x, y = task.x_train.double(), task.y_train.double()

    def f(flat):
        return task.loss(functional_call(module, layout.unflatten(flat), (x,)), y)

    print(f"teacher-student width {a.width}: {layout.size} parameters, {m} Lanczos iterations, float32 scan against "
          "the float64 explicit Riemannian Hessian")
    for k, th in enumerate(torch.tensor(params, dtype=torch.float64)):
        H, g = hessian(f)(th), grad(f)(th)
        P = torch.eye(len(th), dtype=th.dtype) - torch.outer(th, th) / th.dot(th)
        R = P @ H @ P - (g.dot(th) / th.dot(th)) * P
        basis = torch.linalg.svd(P)[0][:, :len(th) - 1]
        ev = torch.linalg.eigvalsh(basis.T @ R @ basis).numpy()
        want, trace = ev[::-1][:5], float(torch.trace(R))
        rel = np.abs(c["top"][k] - want) / np.abs(want)
        print(f"  w {norm[k]:7.3f}: top {c['top'][k][0]:.6g} (exact {want[0]:.6g}), top-5 max rel err {rel.max():.1e}; "
              f"smallest Ritz {c['smallest'][k]:.4g} (exact smallest {ev[0]:.4g}); residual bound "
              f"{c['residual'][k]:.1e}; trace {c['trace'][k]:.4g} +- {c['trace_se'][k]:.2g} (exact {trace:.4g}: "
              f"{(c['trace'][k] - trace) / c['trace_se'][k]:+.2f} SE)")


if __name__ == "__main__":
    main()
