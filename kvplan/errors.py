"""The exceptions kvplan raises for bad input. The CLI catches KvplanError once and prints one line."""

from __future__ import annotations

from collections.abc import Mapping


class KvplanError(Exception):
    """Base class: a problem the user can fix, with the fix in the message."""

    exit_code = 2


class SpecError(KvplanError):
    """A spec (model or GPU) is malformed, or a setting does not fit it (e.g. tp vs heads)."""


class NotFoundError(KvplanError):
    """A model or GPU name that the catalog does not know."""


class InputError(KvplanError):
    """A value out of range (a negative context, a utilization outside (0, 1], ...).

    The calculators name the inputs they refuse by their keyword (``util``, ``max_num_seqs``) as
    ``{util}`` in the message and list them in `fields`; :meth:`spelled` writes each name as the
    caller knows it: the CLI passes its flags (``--util``), a library caller sees the keyword.
    """

    def __init__(self, message: str, *fields: str) -> None:
        self.template = message
        self.fields = fields
        super().__init__(self.spelled())

    def spelled(self, names: Mapping[str, str] | None = None) -> str:
        text = self.template
        for field in self.fields:
            text = text.replace("{" + field + "}", (names or {}).get(field, field))
        return text
