"""Log lines as one JSON object a line (`LIBRARY_LOG_FORMAT=json`), each with its request id.

journald, Loki or any log shipper reads a line as a record without a parser per message; the
`request_id` ties the lines of one request together and to the answer the reader saw (its
`X-Request-ID` header, the `request_id` of a problem body).

A line: `{"time": "2026-12-07T18:42:01.123Z", "level": "ERROR", "logger": "library.errors",
"message": "...", "request_id": "3f2a...", "exception": "Traceback ..."}` — `request_id` only while
a request is answered, `exception` only with one. uvicorn's own loggers (its access log among
them) get the same format, so the access line of a request carries the id too.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import sys
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from library.web.request_id import current_request_id

# uvicorn's loggers have handlers of their own (they do not propagate): their format is set there.
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii off: a reader's Chinese name stays readable in the log; json escapes newlines,
        # so one record is always one line.
        return json.dumps(line, ensure_ascii=False, default=str)


class _JsonHandler(logging.StreamHandler):
    """Ours: found again and replaced when the app is made a second time in one process."""


def configure_logging(log_format: str, stream=None) -> None:
    """`json`: every record that reaches the root logger (the library's, a dependency's warnings) and
    the server's own, one JSON line each on stderr (or `stream`). `text`: as before, nothing set."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(handler)
    if log_format != "json":
        return
    handler = _JsonHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines())
    # Alone: a text handler beside it (Litestar's own, when an app of this process set one up)
    # would write each record twice, once not as JSON.
    for other in list(root.handlers):
        root.removeHandler(other)
    root.addHandler(handler)
    for name in SERVER_LOGGERS:
        for server_handler in logging.getLogger(name).handlers:
            server_handler.setFormatter(JsonLines())


def server_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's `log_config` for `library serve`: uvicorn's own, its formatters JSON lines when asked.
    Set there, it also reaches the lines uvicorn's supervisor writes with `--workers`, before any
    application (and so `configure_logging`) is loaded."""
    config = copy.deepcopy(LOGGING_CONFIG)
    if log_format == "json":
        config["formatters"] = {name: {"()": JsonLines} for name in config["formatters"]}
    return config
