"""Reading JSON that kvplan did not write (config.json, safetensors headers, trace rows, probe
results): json.loads, with the two inputs Python's parser turns into crashes refused as one line
naming the file: a whole number of thousands of digits (int() refuses over 4,300, and anything
over 308 overflows a float) and nesting deeper than Python's stack (a RecursionError)."""

from __future__ import annotations

import json
import re

from kvplan.errors import KvplanError, SpecError

MAX_DIGITS = 300  # a float holds up to 1.8e308: a longer whole number is no value kvplan reads


class _LongNumber(Exception):
    def __init__(self, digits: int) -> None:
        super().__init__(digits)
        self.digits = digits


def _whole_number(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise _LongNumber(digits)
    return int(text)


def long_number_message(digits: int) -> str:
    return (f"a whole number of {digits:,} digits is beyond any value kvplan reads (at most {MAX_DIGITS}); "
            "write the value meant")


def loads(text: str | bytes, where: object, error: type[KvplanError] = SpecError) -> object:
    """json.loads(text); a number too long or nesting too deep is one `error` naming `where` (and the
    line, in a file of several). A syntax error stays json.JSONDecodeError, for the caller's words."""
    try:
        return json.loads(text, parse_int=_whole_number)
    except _LongNumber as exc:
        raise error(f"{where}{_line_of_long_number(text)}: {long_number_message(exc.digits)}") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply to read (thousands of levels of [ or {{); "
                    "is it the right file?") from None


def _line_of_long_number(text: str | bytes) -> str:
    if isinstance(text, bytes) or "\n" not in text:
        return ""
    match = re.search(r"\d{%d,}" % (MAX_DIGITS + 1), text)
    return f":{text.count(chr(10), 0, match.start()) + 1}" if match else ""
