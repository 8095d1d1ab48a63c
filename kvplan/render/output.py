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
PATH_MAX = 4096  # bytes in a whole path on Linux, its terminating NUL included


def output_path(path: Path, flag: str, suffixes: Sequence[str] = ()) -> Path:
    """`path` if kvplan can write a file there, else an InputError naming `flag` and the fix."""
    path = Path(path)
    short_enough(path, flag)
    try:
        if path.is_dir():
            raise InputError(f"{flag} {path}: is a folder; give a file name inside it")
    except OSError as exc:  # a limit of the file system below ours (eCryptfs names: 143 bytes)
        raise InputError(f"{flag} {_shown(path)}: cannot look at it ({exc.strerror or exc}); pick another path") from None
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(f"{flag} {path}: write a {' or '.join(suffixes)} file")
    folder_must_exist(path.parent, flag, path)
    return path


def short_enough(path: Path, flag: str) -> None:
    """A path the file system can name: every name at most NAME_MAX bytes, the whole under PATH_MAX
    (a longer one is OSError ENAMETOOLONG from the first call that touches it)."""
    if any(len(os.fsencode(part)) > NAME_MAX for part in Path(path).parts):
        raise InputError(f"{flag} {_shown(path)}: a name in it is longer than {NAME_MAX} bytes; shorten it")
    if len(os.fsencode(path)) >= PATH_MAX:
        raise InputError(f"{flag} {_shown(path)}: the path is {len(os.fsencode(path)):,} bytes, longer than the "
                         f"{PATH_MAX - 1:,} the file system takes; shorten it")


def _shown(path: Path) -> str:
    return str(path)[:60] + "..." if len(str(path)) > 60 else str(path)


def output_folder(folder: Path, flag: str) -> None:
    """A folder kvplan will write into (making it if missing): named within the limits, and where it
    exists, a writable folder."""
    short_enough(folder, flag)
    try:
        exists = folder.exists()
    except OSError as exc:
        raise InputError(f"{flag} {_shown(folder)}: cannot look at it ({exc.strerror or exc}); pick another path") from None
    if exists:
        folder_must_exist(folder, flag)


def folder_must_exist(folder: Path, flag: str, shown: Path | None = None) -> None:
    shown = shown or folder
    try:
        for above in (folder, *folder.parents):
            if above.exists() and not above.is_dir():
                raise InputError(f"{flag} {shown}: {above} is a file, not a folder; pick another path")
        if not folder.is_dir():
            raise InputError(f"{flag} {shown}: the folder {folder} does not exist; create it first")
    except OSError as exc:
        raise InputError(f"{flag} {_shown(shown)}: cannot look at it ({exc.strerror or exc}); pick another path") from None
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
