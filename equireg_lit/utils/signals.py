"""Graceful stop on SIGTERM / SIGINT: the first signal asks the run to stop at the next sampling
step (finished samples are kept and summarized); a second one stops at once."""

from __future__ import annotations

import os
import signal
import threading

from equireg_lit.errors import RunInterrupted

_requested: int | None = None
_forwarded = False
_previous: dict[int, object] = {}


def _handler(signum: int, frame) -> None:
    global _requested, _forwarded
    if signum == signal.SIGTERM and _forwarded:  # our own forwarding of a SIGINT, below
        _forwarded = False
        return
    if _requested is not None:  # a second signal: stop now
        raise KeyboardInterrupt
    _requested = signum
    if signum == signal.SIGINT:
        # Lightning reacts to SIGTERM only (fit: stop all processes in step, forward to workers);
        # re-raise Ctrl-C as SIGTERM so both signals take the same graceful path.
        _forwarded = True
        os.kill(os.getpid(), signal.SIGTERM)


def install() -> None:
    """Handle SIGTERM and SIGINT (main thread only; no-op elsewhere)."""
    global _requested, _forwarded
    _requested, _forwarded = None, False
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(sig)
        if current is not _handler:
            _previous[sig] = current
            signal.signal(sig, _handler)


def uninstall() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, prev in list(_previous.items()):
        if signal.getsignal(sig) is _handler:
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
    _previous.clear()


def requested() -> int | None:
    """The signal that asked to stop, or None."""
    return _requested


def request(signum: int = signal.SIGTERM) -> None:
    """Ask the run to stop as if ``signum`` had arrived (tests; forwarding)."""
    global _requested
    _requested = signum


def raise_if_requested() -> None:
    """Raise :class:`RunInterrupted` when a stop was asked for."""
    if _requested is not None:
        raise RunInterrupted(_requested)

