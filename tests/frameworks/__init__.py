"""Real framework applications for test_frameworks.py.

- ``flask_app``: Flask streaming (``stream_with_context``) and ``send_file``; ferricorn runs
  it as ``frameworks.flask_app:app`` from ``tests/``.
- ``pyramid_app``: a Pyramid package with a PasteDeploy ``production.ini``, served with
  ``--paste``; it imports as the top-level ``pyramid_app`` (``--pythonpath tests/frameworks``).
- ``wsgi_http_proxy``: a small WSGI app that forwards to a live server over HTTP, for WebTest
  when WSGIProxy2 is not installed.

The Django project is not here: the tests make it with ``django-admin startproject``.
"""
