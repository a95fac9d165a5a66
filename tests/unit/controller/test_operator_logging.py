"""The operator's log stays about ctrain: no line per scrape, probe or watch event."""

import logging
from collections.abc import Iterator

import pytest

from ctrain.controller.main import CHATTY, quiet_libraries


@pytest.fixture(autouse=True)
def restore_levels() -> Iterator[None]:
    saved = {name: logging.getLogger(name).level for name in CHATTY}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_routine_requests_are_not_logged_at_info() -> None:
    quiet_libraries(logging.INFO)
    # A /metrics scrape (httpx) and a liveness probe (aiohttp's access log) are routine.
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aiohttp.access").isEnabledFor(logging.INFO)
    assert not logging.getLogger("kopf.objects").isEnabledFor(logging.INFO)
    # Their failures still show.
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)


def test_debug_logging_shows_them() -> None:
    quiet_libraries(logging.DEBUG)
    assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("aiohttp.access").isEnabledFor(logging.INFO)
