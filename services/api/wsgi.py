"""WSGI entry point for gunicorn: `gunicorn services.api.wsgi:app`. Settings come from the environment."""

from __future__ import annotations

from services.api.app import create_app
from services.cli.app import App
from shared import logs
from shared.settings import Settings

_settings = Settings.from_env()
logs.configure(_settings.log_level, _settings.log_format)
app = create_app(App(_settings))
