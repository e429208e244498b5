"""Shared helpers of the training tests (no tests here): a tiny toy dataset and a tiny config."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """8 train / 4 val toy images of 32x32: 4 batches of 2 per epoch, so short runs cross epochs."""
    from oasisgan.data.toy import generate_toy

    return generate_toy(tmp_path_factory.mktemp("tiny_toy"), size=32, n_train=8, n_val=4, seed=0, workers=1)


def tiny_cfg(root, **overrides):
    """The toy preset at 32x32 with tiny networks (random 32 crops of 40x40 images + flips)."""
    from oasisgan.data import config_for_root

    values = dict(channels_G=8, channels_D=8, crop_size=32, load_size=40, batch_size=2, iters=6,
                  num_workers=0, freq_print=2, freq_save_latest=2, freq_save_ckpt=0, freq_fid=0,
                  log_every=1, bn_stats_batches=2, spade_hidden=16, z_dim=8)
    values.update(overrides)
    return config_for_root("toy", root, **values)


def states_equal(a: dict, b: dict) -> list:
    """Keys whose tensors differ (empty: identical)."""
    bad = [k for k in a if not torch.equal(a[k], b[k])]
    return bad + sorted(set(a) ^ set(b))


def flat_optimizer_state(sd: dict) -> dict:
    out = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            out[f"{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out
