"""Transitional: `oasisgan.weights` moved to `oasisgan.loading.weights` (#26). Kept only while
training/loop.py, metrics/evaluate.py and losses.py (changed on other branches) still import
the old path; delete once their imports name oasisgan.loading.weights."""
from .loading.weights import *  # noqa: F401,F403
