"""A stop request shared by long-running steps.

A signal handler (or a test) calls ``request_stop()``; loops over sources,
files and items call ``stop_requested()`` between units of work and finish
early, leaving the store consistent, with the work done so far recorded.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

_stop = threading.Event()


def request_stop() -> None:
    _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def reset() -> None:
    _stop.clear()


def install_signal_handlers(on_stop: Callable[[], None] | None = None) -> None:
    """Make SIGTERM and SIGINT ask for a stop; a second one ends the process at once.

    ``on_stop`` (for example, shutting a scheduler down) runs after the first
    signal. Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if _stop.is_set():
            os.write(2, f"{name} again: stopping at once\n".encode())
            os._exit(128 + signum)
        logging.getLogger("pipeline").warning(
            "%s received: finishing the current input, then stopping (send it again to stop at once)", name
        )
        request_stop()
        if on_stop is not None:
            on_stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
