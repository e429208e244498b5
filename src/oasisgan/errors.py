"""Which exceptions are the user's to fix (printed as one line) rather than bugs."""
from __future__ import annotations


class OASISError(Exception):
    """Base class for user-facing errors raised by oasisgan."""


class DataError(OASISError, ValueError):
    """Bad dataset content or layout; the message names the file and what is wrong."""


class LabelError(DataError):
    """A label map with ids outside the model's classes, or the wrong size."""


def is_user_error(e: BaseException) -> bool:
    from .checkpoint import CheckpointError
    from .config import ConfigError
    from .weights import WeightsError

    return isinstance(e, (OASISError, ConfigError, CheckpointError, WeightsError, FileNotFoundError))
