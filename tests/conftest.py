"""Shared fixtures. `shared_dir` is ../shared beside the checkout (real dataset samples, weights)."""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "datasets").is_dir():
        pytest.skip(f"real dataset samples not found at {SHARED}/datasets")
    return SHARED


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    yield


def _end(processes) -> None:
    for p in processes:
        p.kill()
        p.join(5)


@pytest.fixture(autouse=True)
def _no_leaked_processes():
    """Fail the test that leaves multiprocessing children running. DataLoader workers ignore
    SIGTERM (data.loader), so one left behind makes the interpreter's exit join it forever: a
    green suite that never ends (CI once timed out so). The leftovers are killed here."""
    before = set(multiprocessing.active_children())
    yield
    deadline = time.monotonic() + 10  # an iterator's own shutdown joins its workers
    while True:
        leaked = [p for p in multiprocessing.active_children() if p not in before]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    _end(leaked)
    if leaked:
        pytest.fail(f"the test left {len(leaked)} child process(es) running: {leaked}", pytrace=False)


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    """A small toy dataset (64 train / 16 val, 64x64, seed 0) in the custom layout, for everyone's tests."""
    from oasisgan.data.toy import generate_toy

    return generate_toy(tmp_path_factory.mktemp("toy"), size=64, n_train=64, n_val=16, seed=0, workers=1)


def pytest_terminal_summary(terminalreporter):
    """Say in one line when the painter's browser tests did not run, and how to run them: on a
    fresh machine they skip (no Chromium), which a green `make test` would otherwise hide."""
    skipped = [r for r in terminalreporter.stats.get("skipped", [])
               if "test_app_browser" in str(getattr(r, "nodeid", "") or getattr(r, "fspath", ""))]
    if skipped:
        reason = skipped[0].longrepr[2] if isinstance(skipped[0].longrepr, tuple) else str(skipped[0].longrepr)
        reason = reason.replace("Skipped: ", "")
        terminalreporter.write_line(f"NOTE: the painter's browser tests were skipped: {reason} "
                                    "(CI's .ci/run installs chromium)", yellow=True, bold=True)


def pytest_unconfigure(config):
    """Children of session-wide fixtures, which the per-test check does not see: end them, so the
    interpreter's exit never waits on one."""
    left = multiprocessing.active_children()
    if left:
        print(f"conftest: ending child processes left at the end of the session: {left}")
    _end(left)
