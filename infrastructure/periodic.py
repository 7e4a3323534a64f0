"""Background work inside ``idemsync serve``: a task run every few seconds in
a daemon thread, which a failure never stops."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("idemsync")


class Periodic:
    """Runs ``run_once`` in a daemon thread every ``interval_seconds`` (first
    at start, unless ``at_start`` is false) until ``stop``; a failure is
    logged with ``what`` and tried again at the next interval (a busy store
    must not stop the server). With ``at_stop``, ``stop`` runs it a last
    time."""

    what = "background work"
    at_start = True
    at_stop = False

    def __init__(self, name: str, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def run_once(self, stop: threading.Event) -> None:
        """One round of the work; ``stop`` is set when the server stops."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.at_stop:
            self._round()

    def _run(self) -> None:
        if not self.at_start and self._stop.wait(self.interval_seconds):
            return
        while True:
            self._round()
            if self._stop.wait(self.interval_seconds):
                return

    def _round(self) -> None:
        try:
            self.run_once(self._stop)
        except Exception:
            log.exception("%s failed; next try later", self.what)
