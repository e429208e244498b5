"""Time one full OASIS training iteration (G step + D step with LabelMix + EMA, the real
`TrainStep`) at ADE20K settings, code paths interleaved, one worker process per variant.

    python benchmarks/bench_train.py            # 64/128 px, batch 2/4: plain vs fast vs bf16, CPU
    python benchmarks/bench_train.py --quick
    python benchmarks/bench_train.py --device cuda --configs 256x8,256x32
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchmarks.common import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("train"))
