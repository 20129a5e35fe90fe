# A gunicorn config in the layout of gunicorn's own examples/example_config.py: every
# setting a team copies from it, most of them left at their default, and the hooks that
# only log. Nothing here is ferricorn-specific.
import os

# Server socket
bind = os.environ.get("DROPIN_BIND", "127.0.0.1:0")
backlog = 2048

# Worker processes
workers = 1
worker_class = "sync"
worker_connections = 1000
timeout = 30
keepalive = 2

# Debugging
spew = False

# Server mechanics
daemon = False
raw_env = ["DJANGO_SETTINGS_MODULE=mysite.settings"]
pidfile = None
umask = 0
user = None
group = None
tmp_upload_dir = None
control_socket_disable = True

# Logging
errorlog = "-"
loglevel = "info"
accesslog = None
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

# Process naming
proc_name = None


# Server hooks
def post_fork(server, worker):
    server.log.info("Worker spawned (pid: %s)", worker.pid)


def pre_fork(server, worker):
    pass


def pre_exec(server):
    server.log.info("Forked child, re-executing.")


def when_ready(server):
    server.log.info("Server is ready. Spawning workers")


def worker_int(worker):
    worker.log.info("worker received INT or QUIT signal")


def worker_abort(worker):
    worker.log.info("worker received SIGABRT signal")
