"""Viewers of the twodclass plugin (every Viewer exported here is discovered)."""

from .viewer_classify import TwoDClassifyViewer

__all__ = ["TwoDClassifyViewer"]
