"""Transitional: `oasisgan.checkpoint` moved to `oasisgan.loading.checkpoint` (#26). Kept only while
training/loop.py, metrics/evaluate.py and losses.py (changed on other branches) still import
the old path; delete once their imports name oasisgan.loading.checkpoint."""
from .loading.checkpoint import *  # noqa: F401,F403
