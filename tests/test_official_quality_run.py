"""scripts/official_quality_run.py and official_harness.official_widths: the official training at
a preset's widths, saved as our checkpoints.

Needs a checkout of boschresearch/OASIS ($OASIS_OFFICIAL_REPO, or official-oasis / OASIS next to
this repository or its parent folder); skipped with the reason where there is none.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_compare_official_training import REPO

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "official_quality_run.py"
pytestmark = pytest.mark.skipif(REPO is None, reason="no checkout of the official OASIS code: set "
                                "OASIS_OFFICIAL_REPO (git clone https://github.com/boschresearch/OASIS)")


@pytest.fixture(scope="module")
def harness():
    sys.path.insert(0, str(ROOT / "scripts"))
    import official_harness

    return official_harness


@pytest.mark.parametrize("shape", [dict(), dict(channels_D=8, spade_hidden=16, num_res_blocks=3)])
def test_the_official_classes_at_our_widths_are_our_networks(harness, shape):
    """Built at the toy's widths (or others), the official G and D have our names, shapes and
    parameter count, and with our weights give our outputs."""
    from oasisgan.config import preset
    from oasisgan.labels import one_hot
    from oasisgan.nn import Discriminator, Generator
    from oasisgan import ops

    off = harness.import_official(str(REPO))
    cfg = preset("toy", semantic_nc=6, dontcare_label=0, **shape)
    torch.manual_seed(0)
    ours_g, ours_d = Generator.from_config(cfg), Discriminator.from_config(cfg)
    model = harness.official_model(off, harness.official_opt(cfg, 2), cfg)
    g, d = model.netG, model.netD
    for theirs, ours in ((g, ours_g), (d, ours_d)):
        assert sum(p.numel() for p in theirs.parameters()) == sum(p.numel() for p in ours.parameters())
        assert {k: v.shape for k, v in theirs.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
        theirs.load_state_dict(ours.state_dict())  # strict
    # the official classes are restored once the model is built
    assert off.generator.OASIS_Generator.__module__ == "models.generator"
    ids = torch.randint(0, 6, (2, 8, 8)).repeat_interleave(8, 1).repeat_interleave(8, 2)
    z = torch.randn(2, cfg.z_dim)
    with torch.no_grad(), ops.use("ref"):
        for net in (g, d, ours_g, ours_d):
            net.eval()
        fake = harness.with_z(lambda: g(one_hot(ids, 6)), z)
        assert harness.rel(fake, ours_g(ids, z)) < 1e-5
        assert harness.rel(d(fake), ours_d(fake)) < 1e-5


def test_a_short_official_run_writes_checkpoints_we_load(tmp_path, toy_root):
    from oasisgan import load

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--official-repo", str(REPO), "--preset", "toy",
                           "--data-root", str(toy_root), "--out", str(out), "--seed", "3", "--iters", "4",
                           "--save-every", "2", "--log-every", "2", "--set", "batch_size=2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iter_2.ckpt", "iter_4.ckpt"]
    model = load(out / "checkpoints" / "iter_4.ckpt")
    assert model.config.channels_D == 16 and model.config.seed == 3
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [2, 4] and all(r["speed/it_per_s"] > 0 for r in rows)
    # trained: the EMA moved off the initial weights, which are our Trainer's for seed 3
    from oasisgan.nn import Generator
    from oasisgan.training.state import seed_everything

    seed_everything(3)
    start = Generator.from_config(model.config).state_dict()
    moved = [k for k, v in model.generator.state_dict().items() if k.endswith("weight_orig")
             and not torch.equal(v, start[k])]
    assert moved
    ids = torch.zeros(1, 64, 64, dtype=torch.long)
    assert torch.isfinite(model.generator(ids, torch.randn(1, model.config.z_dim))).all()
