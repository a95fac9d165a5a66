"""The reliability suites: hostile inputs and crashes at the worst moment (`make reliability`).

The serving suite reuses the serving tests' helpers (a real `ctrain serve` process, models
fitted in-process) from tests/unit/serving_fixtures.py.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))


def _integration_fixtures() -> ModuleType:
    """The integration tier's fixtures (the real operator process, a ready namespace),
    loaded under another module name: both files are called conftest.py."""
    path = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
    spec = importlib.util.spec_from_file_location("integration_fixtures", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_fixtures = _integration_fixtures()
operator = _fixtures.operator
ml_namespace = _fixtures.ml_namespace
