"""Structured logs: stable snake_case event names, key=value fields, ids bound per message.

`log.info("document_indexed", site=..., chunks=12)` — never f-strings in the event name, so logs can be
counted and alerted on. `bind(...)` adds fields (message id, document) to every line logged in the current
context; the dramatiq middleware binds them per message.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


class _CurrentStderr:
    """Whatever `sys.stderr` is at the moment of writing (test runners and daemons swap it), not at configure()."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", fmt: str = "console") -> None:
    """Set up structlog once per process; JSON for production, aligned key=value for a terminal."""
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    # Libraries log through the stdlib; keep their noise at WARNING unless we are debugging.
    logging.basicConfig(level=logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    # Werkzeug's access log duplicates our own webhook_* / request events.
    logging.getLogger("werkzeug").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)


def get_logger(name: str) -> Any:
    """A structlog logger carrying `component=name`."""
    return structlog.get_logger(component=name)


def bind(**fields: Any) -> None:
    """Bind fields to every log line of the current thread/context until `clear()`."""
    structlog.contextvars.bind_contextvars(**fields)


def clear() -> None:
    structlog.contextvars.clear_contextvars()
