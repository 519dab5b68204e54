"""WSGI entry point (for gunicorn, should a test want a multi-process server)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cmsrag_site.settings")
application = get_wsgi_application()
