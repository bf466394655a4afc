"""Serving: granian (default) or gunicorn (LIPA_SERVER) with N worker processes sharing the port and database."""
from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading

from gunicorn.app.base import BaseApplication

from shared.config import Config

log = logging.getLogger(__name__)


class GatewayServer(BaseApplication):
    """Runs create_app(config) in each worker (built after the fork, so no connection is shared);
    each worker also runs the job scheduler unless ``scheduler=False`` (the jobs' leases keep one
    process per job at a time)."""

    def __init__(self, config: Config, *, host: str, port: int, workers: int = 1, threads: int = 32,
                 scheduler: bool = True):
        self.config_obj = config
        self.start_scheduler = scheduler
        self.options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "graceful_timeout": 20,
            "timeout": 60,
            "accesslog": None,
            "loglevel": "info",
            "post_worker_init": _post_worker_init,
            "worker_exit": _worker_exit,
        }
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25: every gateway on a host would
            self.cfg.set("control_socket_disable", True)  # take over one ~/.gunicorn/gunicorn.ctl; unused here

    def load(self):
        from . import create_app

        app = create_app(self.config_obj, start_background=True, start_scheduler=self.start_scheduler)
        freeze_startup_objects()
        return app


def freeze_startup_objects() -> None:
    """Once a worker has built its app: what startup made (modules, the app, the SDK's tables) lives as long
    as the process, so it is collected once and moved out of the collector's sight (gc.freeze). Otherwise
    every full collection walked all of it while holding the GIL: 35-50 ms with every request in the
    worker stopped, a few times a minute under load, which was the USSD mix's p99 (bench/README.md)."""
    gc.collect()
    gc.freeze()


def _post_worker_init(worker):
    """On SIGTERM, long-polls answer at once (the feed's wait is longer than the graceful timeout)."""
    from .backoffice.feed import STOPPING

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        STOPPING.set()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
    log.info("worker %s ready", worker.pid)


def _worker_exit(server, worker):
    """Stop the jobs, let queued STK pushes and callbacks finish, then stop the dispatcher (the outbox
    keeps the rest)."""
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        _stop_services(app)


SERVERS = ("gunicorn", "gevent", "granian")  # LIPA_SERVER: gunicorn (gthread, the default), gevent, granian


def serve(config: Config, *, host: str, port: int, workers: int = 1, scheduler: bool = True,
          kind: str = "gunicorn") -> None:
    """Run the chosen server in the foreground until SIGTERM/SIGINT (every one drains in-flight requests)."""
    if kind == "granian":
        return _granian(config, host=host, port=port, workers=workers, scheduler=scheduler)
    server = GatewayServer(config, host=host, port=port, workers=workers, scheduler=scheduler)
    if kind == "gevent":  # greenlets: the app's blocking calls (requests, sockets, sleeps) yield once patched
        server.options.update(worker_class="gevent", worker_connections=1000)
        server.options.pop("threads")
    server.run()


def _granian(config: Config, *, host: str, port: int, workers: int, scheduler: bool) -> None:
    """granian (a Rust HTTP server) with its WSGI interface: worker processes forked from this one, each
    building its app after the fork; 32 blocking threads per worker like gunicorn's gthread."""
    from granian.constants import Interfaces
    from granian.server import Server

    def load(_target):
        import multiprocessing.util

        from . import create_app

        app = create_app(config, start_background=True, start_scheduler=scheduler)
        freeze_startup_objects()
        # multiprocessing runs its finalizers when a worker's serve() returns (after granian's drain)
        multiprocessing.util.Finalize(app, _stop_services, args=(app, ), exitpriority=10)
        multiprocessing.util.Finalize(app, _save_coverage, exitpriority=0)  # after the services stopped
        _watch_term()
        log.info("worker %s ready", os.getpid())
        return _traced(app) if threading.gettrace() else app

    Server("gateway.server:unused", address=host, port=port, interface=Interfaces.WSGI, workers=workers,
           blocking_threads=32, log_access=False, workers_kill_timeout=20).serve(target_loader=load)


def _watch_term() -> None:
    """SIGTERM also tells long-polls to answer at once (as _post_worker_init does under gunicorn), so a drain
    never waits out a 20 s long-poll. granian installs its own SIGTERM handler after this app is loaded, so a
    handler set here would be replaced: the signal is seen instead through the wakeup fd (which Python's C
    signal handler writes whichever Python handler is installed), read by a thread."""
    from .backoffice.feed import STOPPING

    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)

    def watch() -> None:
        while not STOPPING.is_set():
            if {signal.SIGTERM, signal.SIGINT} & set(os.read(read_end, 64)):
                STOPPING.set()

    threading.Thread(target=watch, name="lipa-term-watch", daemon=True).start()


def _traced(app):
    """A measured run only (a tracer set through threading.settrace, as coverage does): granian runs the app
    on threads Rust started, which never get that tracer, so each request thread installs it once."""
    tracer, seen = threading.gettrace(), threading.local()

    def wsgi(environ, start_response):
        if not getattr(seen, "done", False):
            seen.done = True
            sys.settrace(tracer)
        return app(environ, start_response)

    return wsgi


def _save_coverage() -> None:
    """A measured run (CI's): a multiprocessing worker leaves through os._exit, skipping the atexit hook that
    saves coverage's data, so it is saved here; without coverage running, nothing."""
    try:
        import coverage
    except ImportError:
        return
    current = coverage.Coverage.current()
    if current is not None:
        current.stop()
        current.save()


def _stop_services(app) -> None:
    """One worker's way out, whichever server runs it: jobs stop, queued background work finishes (15 s at
    most), then the dispatcher (the outbox keeps what is left)."""
    services = app.extensions.get("lipa")
    if services is None:
        return
    if services.scheduler is not None:
        services.scheduler.shutdown()
    try:
        services.tasks.drain(timeout=15)
    except TimeoutError:
        log.warning("worker %s exits with background tasks still running", os.getpid())
    services.dispatcher.stop()
