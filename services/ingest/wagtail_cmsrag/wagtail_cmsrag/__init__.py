"""wagtail-cmsrag: a Django app that sends cmsrag a signed webhook when a Wagtail page changes.

See the README beside `pyproject.toml` for the settings and the retry cron job; `docs/webhooks.md` in cmsrag
is the contract. Nothing here imports Django at import time, so `events` and `signing` stay plain Python.
"""

__version__ = "0.1.0"
