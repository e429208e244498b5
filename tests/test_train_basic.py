"""`oasis train` / `train()`: run directory, loadable checkpoints, exact resume, CLI overrides."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

import oasisgan
from oasisgan.loading.checkpoint import read_checkpoint
from oasisgan.errors import DataError
from oasisgan.training import train

from test_train_helpers import flat_optimizer_state, states_equal, tiny_cfg, tiny_root  # noqa: F401


def test_short_run_writes_run_dir_and_loadable_checkpoints(tiny_root, tmp_path):
    cfg = tiny_cfg(tiny_root, iters=5, freq_save_ckpt=2)
    out = tmp_path / "run"
    res = train(cfg, tiny_root, out, progress=False)
    assert res.status == "finished" and res.iteration == 5
    ck = out / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["iter_2.ckpt", "iter_4.ckpt", "iter_5.ckpt", "latest.ckpt"]
    label = torch.randint(0, cfg.semantic_nc, (1, 32, 32))
    for p in ck.iterdir():
        model = oasisgan.load(p)
        assert model.config.semantic_nc == cfg.semantic_nc and not model.generator.training
        with torch.no_grad():
            img = model.generator(oasisgan.labels.one_hot(label, cfg.semantic_nc))
        assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
    latest = read_checkpoint(ck / "latest.ckpt")
    assert latest["training"]["iteration"] == 5 and read_checkpoint(ck / "iter_4.ckpt")["training"] is None
    # run dir contents
    assert yaml.safe_load((out / "config.yaml").read_text())["iters"] == 5
    assert {"iter_0000002.png", "iter_0000004.png", "iter_0000005.png"} <= {p.name for p in (out / "samples").iterdir()}
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in recs] == [1, 2, 3, 4, 5]
    assert {"loss/G", "loss/D_fake", "loss/D_real", "loss/LabelMix", "loss/D", "lr/G", "lr/D",
            "speed/it_per_s", "speed/img_per_s"} <= set(recs[0])
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())
    # a second run into the same folder is refused unless --resume
    with pytest.raises(oasisgan.config.ConfigError, match="--resume"):
        train(cfg, tiny_root, out, progress=False)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_is_exact(tiny_root, tmp_path, workers):
    """2N iterations straight == N iterations, stop (an unscheduled save), resume for N more.
    N=3 is off the save/grid schedule (every 2) and 6 crosses an epoch (4 batches)."""
    full = train(tiny_cfg(tiny_root, iters=6, num_workers=workers), tiny_root, tmp_path / "a", progress=False)
    half = train(tiny_cfg(tiny_root, iters=3, num_workers=workers), tiny_root, tmp_path / "b", progress=False)
    assert full.iteration == 6 and half.iteration == 3
    rest = train(tiny_cfg(tiny_root, iters=6, num_workers=workers), tiny_root, tmp_path / "b", resume=True,
                 progress=False)
    assert rest.iteration == 6
    a = read_checkpoint(tmp_path / "a/checkpoints/latest.ckpt")
    b = read_checkpoint(tmp_path / "b/checkpoints/latest.ckpt")
    for key in ("generator", "discriminator", "ema"):
        assert states_equal(a[key], b[key]) == [], key
    for key in ("opt_g", "opt_d"):
        assert states_equal(flat_optimizer_state(a["training"][key]), flat_optimizer_state(b["training"][key])) == []
    assert torch.equal(a["training"]["rng"][0]["torch"], b["training"]["rng"][0]["torch"])
    assert full.last_losses == rest.last_losses


def test_bad_data_is_refused_at_start(tiny_root, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    next((root / "train" / "labels").iterdir()).unlink()
    with pytest.raises(DataError):
        train(tiny_cfg(root), root, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_overrides_land_in_config_yaml(tiny_root, tmp_path, capsys):
    from oasisgan.cli import main

    extra = tmp_path / "extra.yaml"
    extra.write_text("lambda_labelmix: 5.0\nspade_hidden: 16\n")
    out = tmp_path / "run"
    rc = main(["train", "--preset", "toy", "--data-root", str(tiny_root), "--out", str(out),
               "--config", str(extra), "--set", "z_dim=8", "--set", "channels_D=8", "--iters", "1",
               "--batch-size", "2", "--crop-size", "32", "--channels-g", "8", "--lr-g", "0.001",
               "--lr-d", "0.002", "--num-workers", "0", "--seed", "7", "--sample-every", "1",
               "--save-every", "1", "--log-every", "1", "--set", "bn_stats_batches=1", "--no-progress"])
    assert rc == 0
    c = yaml.safe_load((out / "config.yaml").read_text())
    assert (c["lambda_labelmix"], c["spade_hidden"], c["z_dim"], c["channels_D"]) == (5.0, 16, 8, 8)
    assert (c["iters"], c["batch_size"], c["crop_size"], c["load_size"], c["channels_G"]) == (1, 2, 32, 32, 8)
    assert (c["lr_g"], c["lr_d"], c["num_workers"], c["seed"]) == (0.001, 0.002, 0, 7)
    assert c["semantic_nc"] == 9 and c["class_names"][1] == "sky"
    assert oasisgan.load(out / "checkpoints/latest.ckpt").config.lr_g == 0.001
    # --resume reads the run's own config.yaml; schedule fields may change
    rc = main(["train", "--out", str(out), "--resume", "--iters", "2", "--no-progress"])
    assert rc == 0 and read_checkpoint(out / "checkpoints/latest.ckpt")["training"]["iteration"] == 2
    # model-defining fields may not (a one-line error, exit code 2)
    rc = main(["train", "--out", str(out), "--resume", "--iters", "3", "--channels-g", "16", "--no-progress"])
    assert rc == 2 and "channels_G: 8 -> 16" in capsys.readouterr().err


def test_speed_modes_on_cpu(tiny_root, tmp_path):
    """bf16 autocast + channels_last train and save loadable float32 checkpoints; fp16 needs CUDA."""
    res = train(tiny_cfg(tiny_root, iters=2, amp="bf16", channels_last=True), tiny_root, tmp_path / "bf16",
                progress=False, tensorboard=False)
    assert res.status == "finished" and all(v == v for v in res.last_losses.values())
    ck = read_checkpoint(tmp_path / "bf16/checkpoints/latest.ckpt")
    assert all(v.dtype in (torch.float32, torch.int64) for v in ck["generator"].values())
    with pytest.raises(oasisgan.config.ConfigError, match="fp16"):
        train(tiny_cfg(tiny_root, iters=2, amp="fp16"), tiny_root, tmp_path / "fp16", device="cpu",
              progress=False)


def _flat_checkpoint(path) -> dict:
    """Every tensor of a checkpoint by its path (networks, EMA buffers, optimiser state)."""
    ck = read_checkpoint(path)
    flat = {}
    for part in ("generator", "discriminator", "ema"):
        flat.update({f"{part}.{k}": v for k, v in ck[part].items()})
    tr = ck["training"]
    flat.update({f"ema_buffers.{k}": v for k, v in (tr.get("ema_buffers") or {}).items()})
    for opt in ("opt_g", "opt_d"):
        flat.update({f"{opt}.{k}": v for k, v in flat_optimizer_state(tr[opt]).items()})
    return flat


def test_save_frequency_leaves_the_trained_model_unchanged(tiny_root, tmp_path):
    """Issue 27: a run that saves (and samples) every 2 iterations ends with the same state, key for
    key and value for value, as one that saves only at the end. Outputs re-collect the EMA's
    BatchNorm statistics on the side: the train-mode passes would also advance its spectral-norm
    vectors, so an in-place re-collection makes the trained EMA depend on the output schedule."""
    quiet = train(tiny_cfg(tiny_root, iters=6, freq_print=0, freq_save_latest=0), tiny_root,
                  tmp_path / "quiet", progress=False)
    busy = train(tiny_cfg(tiny_root, iters=6, freq_print=2, freq_save_latest=2, freq_save_ckpt=2),
                 tiny_root, tmp_path / "busy", progress=False)
    assert quiet.iteration == busy.iteration == 6
    a = _flat_checkpoint(tmp_path / "quiet/checkpoints/latest.ckpt")
    b = _flat_checkpoint(tmp_path / "busy/checkpoints/latest.ckpt")
    assert any(k.startswith("ema_buffers.") and k.endswith("weight_u") for k in a)
    assert sorted(a) == sorted(b) and states_equal(a, b) == []


def test_in_place_recollection_is_the_official_schedule_dependence(tiny_root, tmp_path):
    """`bn_recollect_in_place` (the official `update_EMA`): the outputs' re-collection writes into
    the training EMA, so its spectral-norm vectors depend on when grids and checkpoints were due."""
    runs = {}
    for name, freq in (("quiet", 0), ("busy", 2)):
        train(tiny_cfg(tiny_root, iters=6, freq_print=freq, freq_save_latest=freq, bn_recollect_in_place=True),
              tiny_root, tmp_path / name, progress=False)
        runs[name] = read_checkpoint(tmp_path / name / "checkpoints/latest.ckpt")
    differ = states_equal(runs["quiet"]["ema"], runs["busy"]["ema"])
    assert any(k.endswith(("weight_u", "weight_v")) for k in differ)
    for part in ("generator", "discriminator"):  # the networks being trained are never affected
        assert states_equal(runs["quiet"][part], runs["busy"][part]) == []



def test_in_place_recollection_follows_the_official_update_ema_schedule(tiny_root, tmp_path, monkeypatch):
    """The official update_EMA runs after each iteration with cur_iter counted from 0: it
    re-collects after iteration 1 and after iterations k * freq + 1, and at the end of training
    makes one more EMA step and re-collects again. `bn_recollect_in_place` does the same into
    the training EMA; the outputs due at multiples of freq re-collect on a copy."""
    import contextlib

    from oasisgan.training import loop, periodic

    trainer = loop.Trainer(tiny_cfg(tiny_root, iters=6, freq_print=0, freq_save_latest=2, freq_save_ckpt=0,
                                    bn_recollect_in_place=True), tiny_root, tmp_path / "run", progress=False)
    events, on_copy = [], []
    work = trainer.periodic
    recollect, output_state, update_ema = work.recollect, work.output_state, periodic.update_ema

    @contextlib.contextmanager
    def marked_output_state(step):
        on_copy.append(True)
        try:
            with output_state(step) as buffers:
                yield buffers
        finally:
            on_copy.pop()

    monkeypatch.setattr(work, "recollect", lambda step: (events.append(("copy" if on_copy else "in place", step)),
                                                            recollect(step)))
    monkeypatch.setattr(work, "output_state", marked_output_state)
    monkeypatch.setattr(periodic, "update_ema", lambda *a: (events.append(("extra EMA step", trainer.step)), update_ema(*a)))
    trainer.run()
    assert events == [("in place", 1), ("copy", 2), ("in place", 3), ("copy", 4), ("in place", 5), ("copy", 6),
                      ("extra EMA step", 6), ("in place", 6)]
