"""The benchmark scripts run end to end (a smoke run each, nothing timed against a bound): their
tables have a row per variant with the measured columns, and the FLOP counts show the fast
path's smaller work (Winograd included in inference)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(script, *args):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


def _rows(out, config):
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith(f"| {config} |"):
            rows[cells[1]] = cells
    return rows


def test_bench_infer_reports_each_variant_and_winograd_shrinks_the_work():
    out = _run("bench_infer.py", "--quick", "--configs", "64x1", "--variants", "fast,fast_nowino",
               "--no-save")
    rows = _rows(out, "64x64 b1")
    assert set(rows) == {"fast", "fast_nowino"}
    for cells in rows.values():
        assert float(cells[2]) > 0 and float(cells[5]) > 0  # median s/image, peak RSS GiB
    assert float(rows["fast"][6]) < float(rows["fast_nowino"][6])  # GFLOP: Winograd taken
    assert "rel" in rows["fast_nowino"][-1]  # its difference from the fast variant's image


def test_bench_train_reports_each_variant_with_ratios():
    out = _run("bench_train.py", "--quick", "--configs", "64x2", "--variants", "plain,fast",
               "--no-save")
    rows = _rows(out, "64x64 b2")
    assert set(rows) == {"plain", "fast"}
    assert float(rows["fast"][6]) < float(rows["plain"][6])  # GFLOP per iteration
    assert rows["plain"][8].startswith("1.00x")                # ratios against plain
    assert rows["fast"][8].endswith("x")


def test_bench_data_reports_throughput_as_json():
    out = _run("bench_data.py", "--datasets", "toy", "--workers", "0", "--repeats", "1",
               "--images", "16", "--json")
    results = json.loads(out[out.index("["):])
    assert results and results[0]["workers"] == 0 and results[0]["images_per_s_median"] > 0
