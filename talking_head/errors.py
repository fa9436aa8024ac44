"""Errors a person can act on: bad input (the app shows its message as it is), and weights that cannot be had or
used (the commands end on them with their message, not a traceback)."""


class InputError(ValueError):
    """Bad user input (unreadable file, no face, video too long, ...): a clear, actionable message."""


class WeightsError(RuntimeError):
    """A checkpoint exists but cannot be used (corrupt, truncated, wrong shapes, wrong format)."""


class WeightsNotFoundError(FileNotFoundError):
    """A checkpoint or one of its files cannot be found or downloaded (no network, 404, not cached)."""
