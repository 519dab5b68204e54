"""The test site's one app; its label `app` is what API type filters name (`type=app.ArticlePage`)."""

from django.apps import AppConfig


class TestSiteAppConfig(AppConfig):
    name = "app"
    label = "app"
    default_auto_field = "django.db.models.AutoField"
