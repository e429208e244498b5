"""Which exceptions are the user's to fix (printed as one line) rather than bugs."""
from __future__ import annotations


class OASISError(Exception):
    """Base class for user-facing errors raised by oasisgan."""


class DataError(OASISError, ValueError):
    """Bad dataset content or layout; the message names the file and what is wrong."""


class LabelError(DataError):
    """A label map with ids outside the model's classes, or the wrong size."""


class OutputError(OASISError):
    """An output path that is not ours to replace (an existing file, a folder of other files), or
    a write that failed (disk full, read-only, no permission); the message names the path."""


# What a full, read-only or forbidden disk raises: the user's to fix, not a bug.
WRITE_ERRNOS = frozenset(("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG"))


def os_error_in(e: BaseException):
    """The OSError behind `e` (itself, or in its cause/context chain), or None. torch.save on a
    full disk raises RuntimeError("unexpected pos ...") from the OSError of the write itself."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def is_write_error(e: BaseException) -> bool:
    import errno

    err = os_error_in(e)
    return err is not None and errno.errorcode.get(err.errno or 0) in WRITE_ERRNOS


def write_error_text(e: BaseException) -> str:
    """One line for a failed write: what failed and where (the OSError behind `e`)."""
    err = os_error_in(e) or e
    where = f" {err.filename}" if getattr(err, "filename", None) else ""
    return f"cannot write{where}: {getattr(err, 'strerror', None) or first_line(err)}"


def _own_error(e: BaseException) -> bool:
    return isinstance(e, (OASISError, FileNotFoundError))


def is_user_error(e: BaseException) -> bool:
    return _own_error(e) or is_write_error(e)


def user_message(e: BaseException) -> str:
    """What the CLI prints for a user error: our own message, or what failed to be written."""
    return str(e) if _own_error(e) else write_error_text(e)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its class name when the message is empty
    (`str(e).splitlines()[0]` raises IndexError on an empty message, e.g. torch.load of a 0-byte
    file)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else e.__class__.__name__


def worker_error_text(e: BaseException) -> str:
    """The message of an exception as the user should read it. DataLoader workers re-raise theirs as
    'Caught X in DataLoader worker process N. Original Traceback ...': the last line is the message."""
    text = str(e).strip()
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.splitlines()[-1]
        head, sep, rest = last.partition(": ")
        return rest if sep and head.replace(".", "").replace("_", "").isalnum() else last
    return first_line(e)


class PretrainedError(OASISError):
    """An unknown model name, a bad registry file, an archive that cannot be converted."""


class DownloadError(PretrainedError):
    """A download that failed (offline, refused, HTTP error, cut short too often)."""


class ChecksumError(PretrainedError):
    """A file whose sha256 is not the expected one."""
