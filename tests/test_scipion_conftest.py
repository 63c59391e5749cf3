"""Without Scipion installed, the root conftest skips the Scipion tests and runs the rest."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# a Python that behaves as if scipion-pyworkflow / scipion-em were not installed
BLOCKER = textwrap.dedent("""
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("pyworkflow", "pwem"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, _Block())
    import pytest
    sys.exit(pytest.main(sys.argv[1:]))
""")


def test_scipion_tests_skip_cleanly_without_scipion(tmp_path):
    (tmp_path / "test_mixed.py").write_text(
        textwrap.dedent("""
        import pytest

        @pytest.mark.scipion
        def test_needs_scipion():
            import pwem  # noqa: F401

        def test_plain():
            assert 1 + 1 == 2
    """)
    )
    args = [
        sys.executable,
        "-c",
        BLOCKER,
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "conftest",
        "-rs",
        str(tmp_path / "test_mixed.py"),
        str(ROOT / "tests" / "test_scipion_viewer.py"),
    ]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "1 passed" in out, out
    assert "scipion-pyworkflow / scipion-em not installed" in out, out
    assert "could not import 'pwem'" in out, out  # the module-level importorskip
    assert "error" not in out.lower(), out
