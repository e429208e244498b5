"""Evaluation during training: best.ckpt by the metric, start-up refusal when weights are missing."""
from __future__ import annotations

import json

import pytest

import oasisgan
import oasisgan.metrics as metrics
from oasisgan.loading.checkpoint import read_checkpoint
from oasisgan.config import ConfigError
from oasisgan.training import train
from oasisgan.loading.weights import WeightsError

from test_train_helpers import tiny_cfg, tiny_root  # noqa: F401


def test_eval_every_keeps_best_checkpoint_by_fid(tiny_root, tmp_path, monkeypatch):
    scores = iter([30.0, 10.0, 20.0])
    seen = []

    def fake_evaluate(self, generator, metrics, cfg, data_root):
        seen.append((generator.training, tuple(metrics), str(data_root)))
        return {"fid": next(scores)}

    monkeypatch.setattr(metrics.TrainingEvaluator, "check", lambda *a: None)
    monkeypatch.setattr(metrics.TrainingEvaluator, "__call__", fake_evaluate)
    out = tmp_path / "run"
    res = train(tiny_cfg(tiny_root, iters=6, eval_metrics="fid"), tiny_root, out, eval_every=2, progress=False)
    assert [s[0] for s in seen] == [False] * 3 and seen[0][1] == ("fid",)
    assert res.best == {"metric": "fid", "value": 10.0, "iteration": 4}
    best = read_checkpoint(out / "checkpoints/best.ckpt")
    assert best["meta"]["iteration"] == 4
    oasisgan.load(out / "checkpoints/best.ckpt")
    recs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["eval/fid"] for r in recs if "eval/fid" in r] == [30.0, 10.0, 20.0]
    assert read_checkpoint(out / "checkpoints/latest.ckpt")["training"]["best"]["value"] == 10.0


def test_higher_is_better_for_miou(tiny_root, tmp_path, monkeypatch):
    scores = iter([0.2, 0.5, 0.4])
    monkeypatch.setattr(metrics.TrainingEvaluator, "check", lambda *a: None)
    monkeypatch.setattr(metrics.TrainingEvaluator, "__call__", lambda *a: {"miou": next(scores), "accuracy": 0.9})
    res = train(tiny_cfg(tiny_root, iters=6, eval_metrics="miou"), tiny_root, tmp_path / "r", eval_every=2,
                progress=False)
    assert res.best == {"metric": "miou", "value": 0.5, "iteration": 4}


def test_missing_metric_weights(tiny_root, tmp_path, monkeypatch, capsys):
    def missing(*a, **k):
        raise WeightsError("FID Inception weights (pt_inception-2015-12-05-6726825d.pth) not found")

    monkeypatch.setattr(metrics.TrainingEvaluator, "check", missing)
    # asked for explicitly: refused at start-up, before any training
    with pytest.raises(ConfigError, match="--eval-every 2: cannot evaluate fid: FID Inception weights"):
        train(tiny_cfg(tiny_root, iters=2), tiny_root, tmp_path / "a", eval_every=2, progress=False)
    assert not (tmp_path / "a" / "checkpoints").exists()
    # from the preset's schedule: a note, and training goes on without evaluation
    res = train(tiny_cfg(tiny_root, iters=2, freq_fid=1), tiny_root, tmp_path / "b", progress=False)
    assert res.status == "finished" and not (tmp_path / "b/checkpoints/best.ckpt").exists()
    assert "evaluation during training is off" in capsys.readouterr().err
