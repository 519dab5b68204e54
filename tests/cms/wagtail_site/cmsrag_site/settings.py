"""Settings of the cmsrag test Wagtail site: the least Wagtail needs to serve pages and API v2 from SQLite.

Everything that differs between runs comes from the environment, so one source tree serves any number of
sites side by side (one data folder each), as `tests/cms/wagtail.py` starts them:

- `CMSRAG_WAGTAIL_DB`: the SQLite file (default `db.sqlite3` beside `manage.py`);
- `CMSRAG_WAGTAIL_PORT`, `CMSRAG_WAGTAIL_BASE_URL`: where the site is served (admin links and `ALLOWED_HOSTS`);
- `CMSRAG_WAGTAIL_SECRET_KEY`: Django's signing key (a fixed value is fine for a throwaway test site);
- `CMSRAG_WAGTAIL_LIMIT_MAX`: the API's page-size cap (default 100 here; Wagtail's own default is 20);
- `CMSRAG_WAGTAIL_EXTRA_APPS`: comma-separated apps to add, e.g. a webhook plugin under test (on `PYTHONPATH`);
- `CMSRAG_WAGTAIL_EXTRA_SETTINGS`: a JSON object of further settings (upper-case names), e.g. that plugin's own;
- `CMSRAG_WAGTAIL_DEBUG`: "1" for Django's debug pages.
"""

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ

PORT = int(ENV.get("CMSRAG_WAGTAIL_PORT", "8000"))
BASE_URL = ENV.get("CMSRAG_WAGTAIL_BASE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
SECRET_KEY = ENV.get("CMSRAG_WAGTAIL_SECRET_KEY", "cmsrag-test-site-not-a-secret-" + "x" * 24)
DEBUG = ENV.get("CMSRAG_WAGTAIL_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", BASE_URL.split("://", 1)[-1].split("/")[0].split(":")[0]]

INSTALLED_APPS = [
    "app",
    "wagtail.api.v2",
    "rest_framework",
    "wagtail.sites",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    *[a.strip() for a in ENV.get("CMSRAG_WAGTAIL_EXTRA_APPS", "").split(",") if a.strip()],
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "cmsrag_site.urls"
WSGI_APPLICATION = "cmsrag_site.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": ENV.get("CMSRAG_WAGTAIL_DB", str(BASE_DIR / "db.sqlite3")),
        # The server and `manage.py shell` calls write to the same file: wait for locks instead of failing.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = ENV.get("CMSRAG_WAGTAIL_STATIC", str(BASE_DIR / "static"))
MEDIA_URL = "/media/"
MEDIA_ROOT = ENV.get("CMSRAG_WAGTAIL_MEDIA", str(BASE_DIR / "media"))

WAGTAIL_SITE_NAME = "cmsrag test site"
WAGTAILADMIN_BASE_URL = BASE_URL
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
WAGTAILAPI_LIMIT_MAX = int(ENV.get("CMSRAG_WAGTAIL_LIMIT_MAX", "100"))

# Last, so that a test can set (or override) anything above.
globals().update({k: v for k, v in json.loads(ENV.get("CMSRAG_WAGTAIL_EXTRA_SETTINGS") or "{}").items() if k.isupper()})
