"""Transitional: `oasisgan.model` moved to `oasisgan.loading.model` (#26). Kept only while
training/loop.py, metrics/evaluate.py and losses.py (changed on other branches) still import
the old path; delete once their imports name oasisgan.loading.model."""
from .loading.model import *  # noqa: F401,F403
