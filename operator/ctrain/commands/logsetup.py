"""Log lines of the batch roles (`ctrain train`, `ctrain evaluate-live`) on stderr.

One format for the pods that run to completion: `key=value` text for people, or one JSON
object per line with the fields of the operator's JSON logs (`message`, `timestamp`,
`severity`) plus `logger`, so one log pipeline parses every ctrain role.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from ctrain.api.common import format_time

__all__ = ["configure_logging"]


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at emit time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must not break the run; handleError reports
            self.handleError(record)


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return format_time(datetime.fromtimestamp(record.created, UTC))

    def format(self, record: logging.LogRecord) -> str:
        # One event per line, so log collectors never split a message.
        return super().format(record).replace("\n", " | ")


class _JsonFormatter(JsonFormatter):
    """The operator's (kopf's) JSON log fields, so one pipeline parses every ctrain role."""

    def add_fields(
        self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_record, record, message_dict)
        level = record.levelno
        log_record["severity"] = (
            "debug" if level <= logging.DEBUG else
            "info" if level <= logging.INFO else
            "warn" if level <= logging.WARNING else
            "error" if level <= logging.ERROR else
            "fatal"
        )  # fmt: skip


def configure_logging(log_format: str) -> None:
    """Log lines of the `ctrain` loggers on stderr: `text` for people, `json` for pipelines."""
    logger = logging.getLogger("ctrain")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    if log_format == "json":
        handler.setFormatter(
            _JsonFormatter("%(message)s %(name)s", rename_fields={"name": "logger"}, timestamp=True)
        )
    else:
        handler.setFormatter(_Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
