# In the style of the gunicorn.py NetBox ships (contrib/gunicorn.py): a few workers, a few
# threads each, long timeouts, worker recycling. No worker_class: gunicorn runs gthread
# because threads > 1.
bind = "127.0.0.1:0"
workers = 1
threads = 3
timeout = 120
max_requests = 5000
max_requests_jitter = 500
