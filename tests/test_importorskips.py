"""Guards the suite against tests that cannot fail: every module a test skips without must be installed by the
test environment (``make test`` installs every extra), so a skip means a missing extra, never a dropped one."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

TESTS = Path(__file__).parent


def _skipped_without() -> dict[str, str]:
    """Each module named by a ``pytest.importorskip("...")`` call in the tests -> the file that names it."""
    named = {}
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "importorskip" and node.args and isinstance(node.args[0], ast.Constant)):
                named.setdefault(node.args[0].value, path.name)
    return named


def test_the_suite_skips_on_modules_at_all():
    assert _skipped_without(), "the parser found no importorskip: the guard below would pass vacuously"


def test_every_module_a_test_skips_without_is_installed():
    missing = {module: where for module, where in _skipped_without().items()
               if importlib.util.find_spec(module.split(".")[0]) is None}
    assert not missing, f"tests skip on modules that no extra installs: {missing}"
