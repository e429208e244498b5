"""The package as users get it: build the wheel, install it into a fresh venv (torch pinned
first, as the README says), and run the CLI from a folder outside the source tree.

Slow (about 1-3 minutes: most of it installing torch and the dependencies from pip's cache or
the local index); `make test` runs it, `make test-fast` does not.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TORCH_SPEC = os.environ.get("OASIS_TEST_TORCH_SPEC", "torch==2.13.0")

pytestmark = pytest.mark.slow


def run(cmd, cwd, env, timeout=600):
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def test_wheel_installs_and_runs_from_a_fresh_venv(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", OASISGAN_HOME=str(tmp_path / "home"))
    t0 = time.perf_counter()
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-q", "-w", dist], tmp_path, env)
    wheel = next(dist.glob("oasisgan-*.whl"))
    t_build = time.perf_counter() - t0
    venv = tmp_path / "venv"
    # No pip inside the venv (ensurepip takes a while): this pip installs into it with --python.
    # --no-compile: byte-compiling torch's thousands of files is most of an install's time.
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    py, oasis = venv / "bin" / "python", venv / "bin" / "oasis"
    pip = [sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-compile"]
    run(pip + [TORCH_SPEC], tmp_path, env)  # pinned first: never a CUDA surprise
    run(pip + [wheel], tmp_path, env)
    t_install = time.perf_counter() - t0 - t_build

    work = tmp_path / "elsewhere"  # no source tree here or on the path
    work.mkdir()
    where = run([py, "-c", "import oasisgan, sys; print(oasisgan.__file__)"], work, env).strip()
    assert where.startswith(str(venv)), where
    assert "pretrained" in run([oasis, "--help"], work, env)
    run([oasis, "data", "toy", "--out", "toy", "--train", "4", "--val", "2", "--workers", "1"], work, env)
    # a small model (random weights: this checks the installed code paths, not image quality)
    run([py, "-c", textwrap.dedent("""
        import torch, oasisgan
        from importlib.resources import files
        from oasisgan.loading.checkpoint import save_checkpoint
        from oasisgan.data import config_for_root
        static = files("oasisgan.app") / "static"
        assert all((static / f).is_file() for f in ("index.html", "app.js", "style.css")), "painter files missing"
        assert (files("oasisgan") / "py.typed").is_file()
        torch.manual_seed(0)
        cfg = config_for_root("toy", "toy")
        g = oasisgan.Generator.from_config(cfg).eval()
        save_checkpoint("m.ckpt", config=cfg, ema=g, generator=g)
        oasisgan.load("m.ckpt").save_pretrained("m_folder")
    """)], work, env)
    run([oasis, "synthesize", "--checkpoint", "m.ckpt", "--labels", "toy/val/labels", "--out", "out"], work, env)
    run([oasis, "synthesize", "--checkpoint", "m_folder", "--labels", "toy/val/labels", "--out", "out2"], work, env)
    assert len(list((work / "out").glob("*_s000.png"))) == 2 and len(list((work / "out2").glob("*_s000.png"))) == 2
    print(f"\nwheel build {t_build:.0f} s, venv + install {t_install:.0f} s, "
          f"total {time.perf_counter() - t0:.0f} s")
