"""Log setup for every command: journald priorities under systemd, plain timestamped lines elsewhere.

Under systemd, stderr is a stream into the journal and systemd says so in ``JOURNAL_STREAM``
(``device:inode`` of that stream). When it matches our stderr, each line starts with its syslog
priority (``<3>`` error, ``<4>`` warning, ``<6>`` info, ``<7>`` debug) and carries no timestamp (the
journal adds time, unit and pid), so ``journalctl -u edgernn -p warning`` shows warnings and errors
only. Every line of a multi-line record (a traceback) carries the prefix, so a traceback is filed
at its record's priority, not as info. Anywhere else (a terminal, a file, a pipe that merely
inherited ``JOURNAL_STREAM``): ``2026-12-06 01:02:03,456 WARNING edgernn.daemon: ...``.

    >>> from edgernn.logs import setup_logging
    >>> setup_logging("info")  # doctest: +SKIP

:class:`Throttle` keeps a repeated warning (rejects, drops, refused connections, failed connects)
to one line per key and interval, with how many events that line stands for. :func:`first_line`
is what a one-line error quotes of an exception.
"""

from __future__ import annotations

import logging
import os
import sys
import time

LEVELS = ("debug", "info", "warning", "error")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty): what a
    one-line error quotes of a library's multi-line message."""
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def syslog_priority(levelno: int) -> int:
    """Python log level -> syslog priority (journald's ``PRIORITY``)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def under_journald(stream=None, environ=None) -> bool:
    """True when ``stream`` (default: stderr) is the journal stream systemd handed us.

    ``JOURNAL_STREAM`` alone is not enough: a child whose stderr was redirected to a file or a
    pipe inherits the variable, and there a ``<4>`` prefix would be noise.
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (AttributeError, OSError, ValueError):  # no real file descriptor (pytest capture, closed)
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


class JournalFormatter(logging.Formatter):
    """``<priority>name: message`` on every line of the record, no timestamp."""

    def __init__(self):
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines() or [""])


def setup_logging(level: str = "warning", stream=None) -> bool:
    """Send every logger's records to ``stream`` (default stderr) at ``level``; replaces earlier
    handlers, so a command may call it again once its config names the level. Returns True when
    the lines carry journald priorities."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of: {', '.join(LEVELS)}")
    stream = stream or sys.stderr
    journal = under_journald(stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if journal else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()  # a StreamHandler's close leaves its stream open
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    return journal


class Throttle:
    """At most one log line per key every ``every`` seconds, with how many events it stands for.

    ``n = t.due(key)`` counts ``count`` events under ``key`` and returns how many the caller's line
    should report (these and those held back since that key's last line), or 0 while the key is
    quiet: its events are held for the next line. A key's first event is always due. Keys are few
    (a pipeline and reason, a failure's text); beyond ``MAX_KEYS`` the one logged longest ago is
    forgotten. Not locked: a line more or less when two threads race is harmless.

        >>> t = Throttle(60.0)
        >>> t.due("a", now=0.0), t.due("a", now=1.0), t.due("a", now=2.0), t.due("a", now=61.0)
        (1, 0, 0, 3)
    """

    MAX_KEYS = 256

    def __init__(self, every: float = 60.0):
        self.every = float(every)
        self._last: dict = {}  # key -> monotonic time of its last line (oldest first)
        self._held: dict = {}  # key -> events since its last line, not reported yet

    def due(self, key="", count: int = 1, now: float | None = None) -> int:
        held = self._held.pop(key, 0) + count
        if held <= 0:
            return 0
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._held[key] = held
            return 0
        self._last.pop(key, None)
        if len(self._last) >= self.MAX_KEYS:  # (its held events go with it: the dicts stay bounded)
            oldest = next(iter(self._last))
            del self._last[oldest]
            self._held.pop(oldest, None)
        self._last[key] = now
        return held

    def held(self, key="") -> int:
        """Events under ``key`` waiting for its next line."""
        return self._held.get(key, 0)

    def forget(self) -> None:
        """Every key's next event is due at once (e.g. the first failure after a good connection)."""
        self._last.clear()
        self._held.clear()
