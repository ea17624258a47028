"""gunicorn settings for CPIMS (used by deploy/Procfile and deploy/cpims-web.service).

Every value can be overridden from the environment (GUNICORN_WORKERS=8 ...) or on the
command line. Requests are short (lists, forms, JSON); long work runs in `flask worker`
processes, so sync workers with a few threads each are enough.
"""
import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")  # behind a TLS reverse proxy
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
worker_class = "gthread"
# An upload of 16 MB over a slow link takes minutes: the proxy buffers it, gunicorn need not wait long.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak never grows without bound.
max_requests = 2000
max_requests_jitter = 200
# Access log to stdout (journald); query strings never carry personal data (S22).
accesslog = "-"
errorlog = "-"
# The app is loaded once in the master, then forked: faster start, shared memory.
preload_app = True
# Database connections must not cross a fork: each worker opens its own pool.


def post_fork(server, worker):
    from app.extensions import db
    app = server.app.wsgi()
    with app.app_context():
        db.engine.dispose(close=False)
