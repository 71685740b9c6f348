"""Ctrl-C as a request to stop cleanly: the first SIGINT sets a flag, a second one aborts at once."""

from __future__ import annotations

import signal
import threading


class InterruptFlag:
    """Context manager: while inside, SIGINT sets ``self.set`` (checked by the caller between units of work)
    instead of raising; a second SIGINT calls the handler installed before (the CLI's: one line, exit 2) or
    raises KeyboardInterrupt. Only the main thread can install it."""

    def __init__(self) -> None:
        self.set = False
        self._old = None

    def __enter__(self) -> InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.set:
            if callable(self._old) and self._old is not signal.default_int_handler:
                self._old(signum, frame)  # the CLI's own "interrupted, exit 2"
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
