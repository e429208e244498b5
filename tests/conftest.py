"""Shared fixtures. `shared_dir` is ../shared beside the checkout (real dataset samples, weights)."""
from __future__ import annotations

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
