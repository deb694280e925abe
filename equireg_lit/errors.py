"""Errors a user can cause, each printed by the CLI as one line (traceback only with ``--debug``).

``ConfigError`` is a ``ValueError`` so that code catching ``ValueError`` keeps working.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is invalid; the message names the setting, the value and the valid range or fix."""


class DataError(ValueError):
    """An input file or folder is unusable; the message names the file and the fix."""


class SamplingError(RuntimeError):
    """A sample became NaN, inf or diverged; names the samples and steps."""


class RunInterrupted(RuntimeError):
    """The run was stopped by a signal (SIGTERM, SIGINT); finished samples are kept.

    Args:
        signum: The signal number; the CLI exits with ``128 + signum``.
    """

    def __init__(self, signum: int):
        import signal

        self.signum = int(signum)
        super().__init__(f"stopped by {signal.Signals(self.signum).name}")


def check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise ``ConfigError`` unless ``value`` is finite and within the given bounds."""
    import math

    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else f"{'(' if low_open else '['}{low}"
        hi = "" if high is None else f"{high}{')' if high_open else ']'}"
        rng = f"{lo or '(-inf'}, {hi or 'inf)'}"
        raise ConfigError(f"{name} must be a finite number in {rng}, got {value}")
