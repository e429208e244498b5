"""The model learns: a few hundred iterations on the toy data move the generated images towards
the real ones (per-class mean colours on unseen validation label maps)."""
from __future__ import annotations

import pytest
import torch

import oasisgan
from oasisgan.data import build_dataset, config_for_root
from oasisgan.labels import one_hot
from oasisgan.nn import Generator
from oasisgan.training import train


def class_colour_error(images: torch.Tensor, reals: torch.Tensor, labels: torch.Tensor, n: int) -> float:
    """Mean over classes present (don't care excluded) of the RGB distance between the mean
    colour of the generated and of the real pixels of that class."""
    errs = []
    for c in range(1, n):
        m = labels == c
        if m.sum() < 20:
            continue
        fake = images.permute(0, 2, 3, 1)[m].mean(0)
        real = reals.permute(0, 2, 3, 1)[m].mean(0)
        errs.append((fake - real).norm().item())
    return sum(errs) / len(errs)


@pytest.mark.slow
def test_a_few_hundred_iterations_follow_the_labels(toy_root, tmp_path):
    cfg = config_for_root("toy", toy_root, crop_size=32, load_size=32, iters=300, num_workers=0,
                          freq_print=100, freq_save_latest=300, log_every=50, bn_stats_batches=4)
    val = build_dataset(cfg, toy_root, "val")
    items = [val[i] for i in range(len(val))]
    labels = torch.stack([it["label"] for it in items])
    reals = torch.stack([it["image"] for it in items])
    onehot = one_hot(labels, cfg.semantic_nc)
    z = torch.randn(len(items), cfg.z_dim, generator=torch.Generator().manual_seed(1))

    torch.manual_seed(cfg.seed)
    with torch.no_grad():  # the untrained network (batch statistics: its BN has seen nothing else)
        before = class_colour_error(Generator.from_config(cfg).train()(onehot, z), reals, labels,
                                    cfg.semantic_nc)
    res = train(cfg, toy_root, tmp_path / "run", progress=False, tensorboard=False)
    assert res.status == "finished"
    model = oasisgan.load(tmp_path / "run/checkpoints/latest.ckpt")
    with torch.no_grad():
        after = class_colour_error(model.generator(onehot, z), reals, labels, cfg.semantic_nc)
    print(f"per-class colour error: untrained {before:.3f} -> trained {after:.3f}")
    # An all-grey image scores 0.49, the untrained network 0.48. After 300 iterations, measured
    # over seeds 0-2 and over the exact speed options on/off (the same function, other float
    # rounding, so another GAN trajectory): 0.22-0.38.
    assert after < 0.85 * before, f"per-class colour error {before:.3f} -> {after:.3f}"
