"""Graceful stop: the first Ctrl-C (SIGINT) or SIGTERM asks the loop to save a checkpoint and
exit after the current iteration; a second Ctrl-C interrupts at once."""
from __future__ import annotations

import signal
import threading
from typing import Optional


class StopRequest:
    def __init__(self):
        self.signum: Optional[int] = None
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signum = signum

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._previous[s] = signal.signal(s, self._handle)
                except (ValueError, OSError):
                    pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            try:
                signal.signal(s, h)
            except (ValueError, OSError):
                pass
        self._previous = {}
