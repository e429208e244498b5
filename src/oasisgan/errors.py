"""Which exceptions are the user's to fix (printed as one line) rather than bugs."""
from __future__ import annotations


class OASISError(Exception):
    """Base class for user-facing errors raised by oasisgan."""


class DataError(OASISError, ValueError):
    """Bad dataset content or layout; the message names the file and what is wrong."""


class LabelError(DataError):
    """A label map with ids outside the model's classes, or the wrong size."""


def is_user_error(e: BaseException) -> bool:
    return isinstance(e, (OASISError, FileNotFoundError))


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
