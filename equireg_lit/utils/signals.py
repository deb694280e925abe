"""Graceful stop on SIGTERM / SIGINT: the first signal asks the run to stop at the next sampling
step or training batch (finished samples are kept and summarized; a fit writes a checkpoint); a
second Ctrl-C stops at once."""

from __future__ import annotations

import os
import signal
import threading

from equireg_lit.errors import RunInterrupted

_requested: int | None = None
_installed = False  # by install(), i.e. by the equireg CLI for the whole command
_previous: dict[int, object] = {}


def _handler(signum: int, frame) -> None:
    global _requested
    if _requested is not None:
        if signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        # A repeated SIGTERM is the same request: Lightning forwards the signal to the processes
        # it launched, which a job's TERM (or Ctrl-C, re-raised below) may also reach directly.
        return
    _requested = signum
    if signum == signal.SIGINT:
        # Lightning reacts to SIGTERM only (fit: stop all processes in step, forward to workers);
        # re-raise Ctrl-C as SIGTERM so both signals take the same graceful path.
        os.kill(os.getpid(), signal.SIGTERM)


def install() -> None:
    """Handle SIGTERM and SIGINT (main thread only; no-op elsewhere)."""
    global _requested, _installed
    _requested, _installed = None, True
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        current = signal.getsignal(sig)
        if current is not _handler:
            _previous[sig] = current
            signal.signal(sig, _handler)


def uninstall() -> None:
    global _installed
    _installed = False
    if threading.current_thread() is not threading.main_thread():
        return
    for sig, prev in list(_previous.items()):
        if signal.getsignal(sig) is _handler:
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
    _previous.clear()


def take_over() -> None:
    """Put this module's handler back in place of the one a Lightning ``Trainer`` registered.

    Lightning 2.6's SIGTERM handler broadcasts between the processes from inside the handler
    (Lightning-AI/pytorch-lightning#20825), at whatever collective each process is in, and
    forwards the signal to the processes it launched, which then get it twice when a job's TERM
    reaches them too: under DDP a stop crashes in gloo ("collective mismatch") instead of writing
    a checkpoint. This handler only records the request; ``CheckpointOnStop`` syncs it between
    the processes at the next batch. Lightning puts its own saved handlers back at teardown."""
    global _requested
    if not _installed:  # used without the CLI: a request left by an earlier run does not count
        _requested = None
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _handler)


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

