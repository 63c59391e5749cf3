"""Scipion plugin of twodclass: 2D classification and class selection in Scipion workflows.

Registered by the entry point ``pyworkflow.plugin: scipion_2dclass``. The protocols run the
``twodclass`` engine installed in the same Python environment; there are no binaries to
install, so ``defineBinaries`` does nothing and ``validateInstallation`` only checks that the
console script exists.
"""

from __future__ import annotations

import os
import sys

import pwem

from engine import __version__

from .constants import ENGINE_SCRIPT

__all__ = ["Plugin", "__version__", "engine_executable"]
_logo = ""
_references = ["twodclass2026"]


def engine_executable() -> str:
    """The ``twodclass`` console script next to the running Python (same environment)."""
    return os.path.join(os.path.dirname(sys.executable), ENGINE_SCRIPT)


class Plugin(pwem.Plugin):
    """twodclass plugin: no binaries, the engine is a Python package of the same install."""

    _url = "https://github.com/twodclass/twodclass"
    _processingField = ["SPA"]

    @classmethod
    def _defineVariables(cls) -> None:
        pass

    @classmethod
    def defineBinaries(cls, env) -> None:  # noqa: ARG003 - nothing to install
        pass

    @classmethod
    def getEnviron(cls):
        """The environment of the engine: this one (the engine lives in the same venv)."""
        import pyworkflow.utils as pwutils

        return pwutils.Environ(os.environ)

    @classmethod
    def validateInstallation(cls) -> list[str]:
        exe = engine_executable()
        if not os.path.exists(exe):
            return [
                f"twodclass console script not found at {exe}: "
                f"pip install scipion-em-2dclass into Scipion's Python"
            ]
        return []

    @classmethod
    def getExecutable(cls) -> str:
        return engine_executable()
