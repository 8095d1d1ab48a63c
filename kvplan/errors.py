"""The exceptions kvplan raises for bad input. The CLI catches KvplanError once and prints one line."""


class KvplanError(Exception):
    """Base class: a problem the user can fix, with the fix in the message."""

    exit_code = 2


class SpecError(KvplanError):
    """A spec (model or GPU) is malformed, or a setting does not fit it (e.g. tp vs heads)."""


class NotFoundError(KvplanError):
    """A model or GPU name that the catalog does not know."""


class InputError(KvplanError):
    """A command-line value out of range (negative context, util outside (0, 1], ...)."""
