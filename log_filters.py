"""Logging filters: no token in a URL ever reaches a log line.

uvicorn's and gunicorn's access logs print each request line with its query string, so the
reset page's `/reset-password?token=...` would leave a live reset link in the log. The filter
rewrites the value of every query parameter whose name contains `token` (`token`,
`access_token`, `reset_token`...) to `[redacted]`, in the message and in its arguments (the
access loggers format their arguments themselves), whatever the environment.
"""

import logging
import re

# A query parameter whose name contains "token", up to the next separator.
TOKEN_IN_QUERY = re.compile(r"([?&;][^=&;#\s\"']*token[^=&;#\s\"']*=)[^&;#\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"
# Request lines are logged here: uvicorn (also under fastapi-cli) and gunicorn.
ACCESS_LOGGERS = ("uvicorn.access", "gunicorn.access")


def redact(text: str) -> str:
    return TOKEN_IN_QUERY.sub(rf"\g<1>{REDACTED}", text)


def _redact_value(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    """Rewrites token values in the record; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {key: _redact_value(value) for key, value in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_value(value) for value in record.args)
        return True


def install() -> None:
    """Attach the filter to the access loggers. Servers configure their loggers' handlers
    (dictConfig) before importing the app and leave a logger's filters in place."""
    for name in ACCESS_LOGGERS:
        access_logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in access_logger.filters):
            access_logger.addFilter(RedactTokens())
