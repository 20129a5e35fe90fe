# A production config that turns sendfile off (for a network filesystem, say), which
# ferricorn has no switch for yet: one warning, and the rest applies.
bind = "127.0.0.1:0"
workers = 1
sendfile = False
statsd_prefix = "web"
