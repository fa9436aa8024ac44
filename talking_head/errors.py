"""Errors meant for the person who supplied the input: the app shows their message as it is."""


class InputError(ValueError):
    """Bad user input (unreadable file, no face, video too long, ...): a clear, actionable message."""
