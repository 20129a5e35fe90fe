"""Realistic gunicorn config files and the small app the drop-in tests serve with them."""
