"""Files kvplan writes (`--plot`, `--junit`, `--markdown`, `import --out`): checked before any work,
written whole or not at all.

A path under a file, a missing or unwritable folder, a name too long for the file system or an
existing folder where a file belongs is one line naming the option and the fix, exit 2. The bytes
go to a temporary file beside the target, then replace it in one rename, so a failure midway
leaves neither half a file nor a clobbered old one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from kvplan.errors import InputError

NAME_MAX = 255  # bytes in one path component on ext4, xfs, apfs and ntfs


def output_path(path: Path, flag: str, suffixes: Sequence[str] = ()) -> Path:
    """`path` if kvplan can write a file there, else an InputError naming `flag` and the fix."""
    path = Path(path)
    if any(len(part.encode()) > NAME_MAX for part in path.parts):
        raise InputError(f"{flag} {str(path)[:60]}...: a name in it is longer than {NAME_MAX} bytes; shorten it")
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a folder; give a file name inside it")
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{flag} {path}: write a {' or '.join(suffixes)} file")
    folder_must_exist(path.parent, flag, path)
    return path


def folder_must_exist(folder: Path, flag: str, shown: Path | None = None) -> None:
    shown = shown or folder
    for above in (folder, *folder.parents):
        if above.exists() and not above.is_dir():
            raise InputError(f"{flag} {shown}: {above} is a file, not a folder; pick another path")
    if not folder.is_dir():
        raise InputError(f"{flag} {shown}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {shown}: the folder {folder} is not writable; pick another")
    try:  # permissions can say yes where the file system says no (/proc, a read-only mount, root's access())
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise InputError(f"{flag} {shown}: cannot write in {folder} ({exc.strerror or exc}); pick another path") from None


def write_output(path: Path, data: str | bytes, flag: str) -> None:
    """Write `data` to `path` atomically (a temporary file beside it, then one rename)."""
    path = output_path(path, flag)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:200]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot write it ({exc.strerror or exc}); pick another path") from None
