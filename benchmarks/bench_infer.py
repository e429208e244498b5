"""Time EMA-generator inference (eval mode, no_grad, a fresh z per call) at ADE20K settings,
code paths interleaved, one worker process per variant; images compared with fp32.

    python benchmarks/bench_infer.py            # 256 px, batch 1 and 4: plain vs fast vs bf16, CPU
    python benchmarks/bench_infer.py --quick
    python benchmarks/bench_infer.py --device cuda --configs 256x1,256x16
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchmarks.common import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main("infer"))
