"""Log lines of `ctrain serve`: human text, or one JSON object per line for collectors.

`--log-format json` writes what log pipelines (Loki, Elasticsearch, Cloud Logging)
parse without a regex: `{"level", "logger", "message", <extra fields>, "time"}`, with
the time in ISO 8601 UTC and a traceback, if any, in `exc_info`. uvicorn's own loggers
go through the same root handler, so every line of the process has one format.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

__all__ = ["LOG_FORMATS", "configure_logging"]

LOG_FORMATS = ("text", "json")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "info", log_format: str = "text") -> None:
    """Send every logger's records to stderr in `log_format`, at `level` and above."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}: {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if log_format == "json":
        formatter = JsonFormatter(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
        )
    else:
        formatter = logging.Formatter(_TEXT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
