"""WSGI entry point for gunicorn: `gunicorn services.ingest.wsgi:app`. Settings come from the environment."""

from __future__ import annotations

from services.cli.app import App
from shared import logs
from shared.settings import Settings

_settings = Settings.from_env()
logs.configure(_settings.log_level, _settings.log_format)
app = App(_settings, connect_broker_now=False).receiver()
