# A production config that also ships metrics to a StatsD agent (the kind PostHog and
# many Kubernetes charts carry). ferricorn sends gunicorn's metrics to it.
bind = "127.0.0.1:0"
workers = 1
statsd_host = "localhost:8125"
statsd_prefix = "web"
