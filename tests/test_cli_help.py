"""`oasis --help` and every subcommand's `--help` answer without importing torch (well under a second)."""
from __future__ import annotations

import subprocess
import sys
import time

CODE = """
import sys, contextlib, io
from oasisgan.cli import COMMANDS, build_parser, main
parser = build_parser()
names = [None] + [c.replace("_", "-") for c in COMMANDS]
for name in names:
    argv = ["--help"] if name is None else [name, "--help"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(argv)
        except SystemExit as e:
            assert e.code == 0, (argv, e.code)
    assert "usage: oasis" in out.getvalue(), argv
heavy = [m for m in ("torch", "numpy", "PIL") if m in sys.modules]
assert not heavy, heavy
print("ok", len(names))
"""


def test_help_does_not_import_torch():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
    # the whole interpreter, every command's help included: no torch, so about 0.3 s here
    assert time.perf_counter() - t0 < 5
