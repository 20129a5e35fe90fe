"""The shared half of split_config.py."""

workers = 2
proc_name = "split-config"
