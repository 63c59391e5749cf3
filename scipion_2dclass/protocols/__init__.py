"""Protocols of the twodclass plugin (every Protocol exported here is discovered)."""

from .protocol_classify import ProtTwoDClassify
from .protocol_select import ProtTwoDSelect

__all__ = ["ProtTwoDClassify", "ProtTwoDSelect"]
