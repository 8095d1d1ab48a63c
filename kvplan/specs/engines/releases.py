"""Releases as tuples that compare as PEP 440 orders them, and back (the registry's presets and
served.py's per-release table read them alike)."""

from __future__ import annotations

import re

_POST = re.compile(r"[-_.]?post(\d+)")


def release_tuple(numbers: str, tail: str | None = None) -> tuple[int, ...]:
    """A release as a tuple that compares as PEP 440 orders releases: 0.15.0 -> (0, 15, 0); a post
    release takes its number after four places, 0.4.9.post3 -> (0, 4, 9, 0, 3), between 0.4.9 and
    0.4.9.1; any other tail (rc, dev, local) is the numbered release's."""
    version = tuple(int(part) for part in numbers.split("."))
    post = _POST.match(tail or "")
    if post and len(version) <= 4:
        version += (0,) * (4 - len(version)) + (int(post[1]),)
    return version


def release_text(version: tuple[int, ...]) -> str:
    """A release tuple as the engine prints it: (0, 4, 9, 0, 3) -> '0.4.9.post3' (release_tuple's inverse)."""
    if len(version) == 5:
        numbers = version[:4] if version[3] else version[:3]
        return ".".join(map(str, numbers)) + f".post{version[4]}"
    return ".".join(map(str, version))
