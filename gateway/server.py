"""Serving: gunicorn (a production WSGI server) with N worker processes sharing the port and database."""
from __future__ import annotations

import logging
import signal

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

        return create_app(self.config_obj, start_background=True, start_scheduler=self.start_scheduler)


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
    services = getattr(app, "extensions", {}).get("lipa") if app is not None else None
    if services is None:
        return
    if services.scheduler is not None:
        services.scheduler.shutdown()
    try:
        services.tasks.drain(timeout=15)
    except TimeoutError:
        log.warning("worker %s exits with background tasks still running", worker.pid)
    services.dispatcher.stop()
