"""How the service's log entries look: a line of text, or one JSON object per line for log collectors."""
import logging

from pythonjsonlogger.json import JsonFormatter

TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def formatter_for(log_format: str) -> logging.Formatter:
    """Return the formatter for LOG_FORMAT (text or json)."""
    if log_format == "text":
        return logging.Formatter(TEXT)
    if log_format == "json":
        # The text line's fields under plain names, the time in ISO 8601 UTC, and any `extra=` fields a caller
        # gives as keys of their own (the request line's method, route, status, duration and id).
        return JsonFormatter("%(levelname)s %(name)s %(message)s",
                             rename_fields={"levelname": "level", "name": "logger"}, timestamp="time")
    raise ValueError(f"unknown log format {log_format!r}")
