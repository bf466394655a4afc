"""Background work that must not run inside a provider's request (the STK push after a USSD END)."""
from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

from shared.db import db

log = logging.getLogger(__name__)


class Tasks:
    """A small thread pool; each task gets its own database connection and never raises into the caller.

    Long-running work has a lane of its own (``submit_to``): the callback drains (gateway/mpesa/batches.py)
    run on ``lanes["callbacks"]`` threads, so a burst being applied never holds back the STK push a customer
    is waiting for. ``drain()`` waits for every lane."""

    def __init__(self, max_workers: int = 4, after_each=None, lanes: dict[str, int] | None = None):
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="lipa-task")
        self._lanes = {name: ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"lipa-{name}")
                       for name, size in (lanes or {"callbacks": 4}).items()}
        self.after_each = after_each  # called after every task (committed by then): wakes the dispatcher
        self._pending: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, fn, *args, **kwargs) -> Future:
        """Run fn in the background; failures are logged (the sweeps heal what they leave undone)."""
        return self._start(self._pool, fn, *args, **kwargs)

    def submit_to(self, lane: str, fn, *args, **kwargs) -> Future:
        """submit(), on the threads of ``lane``."""
        return self._start(self._lanes[lane], fn, *args, **kwargs)

    def _start(self, pool: ThreadPoolExecutor, fn, *args, **kwargs) -> Future:
        context = contextvars.copy_context()  # the submitter's bindings (its app's payment hooks) go along
        future = pool.submit(context.run, self._run, fn, *args, **kwargs)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)

    def _run(self, fn, *args, **kwargs):
        try:
            with db.connection_context():
                return fn(*args, **kwargs)
        except Exception:
            log.exception("background task %s failed", getattr(fn, "__name__", fn))
            return None
        finally:
            if self.after_each is not None:
                self.after_each()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every submitted task is done (tests, shutdown); tasks may submit more."""
        while True:
            with self._lock:
                pending = set(self._pending)
            if not pending:
                return
            done, not_done = wait(pending, timeout=timeout)
            if not_done:
                raise TimeoutError(f"{len(not_done)} background tasks still running")

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        for lane in self._lanes.values():
            lane.shutdown(wait=True)
