"""Moved to cloudmask.savedmodel (the library: evaluate, the bench and training load SavedModels too).

Kept only so cloudmask/train/realclouds.py, which the training work has open, keeps its old import until that
work updates the line to `from cloudmask.savedmodel import Runner`; then this file goes (tests/test_layers.py
lists it as the one exception).
"""

from cloudmask.savedmodel import ModelDir, Runner, discover  # noqa: F401
