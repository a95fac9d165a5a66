"""The reliability suites: hostile inputs and crashes at the worst moment (`make reliability`).

The serving suite reuses the serving tests' helpers (a real `ctrain serve` process, models
fitted in-process) from tests/unit/serving_fixtures.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
