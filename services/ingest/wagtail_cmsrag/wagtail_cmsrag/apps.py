"""The Django app: connects the page signals and the settings check when Django starts."""

from django.apps import AppConfig


class WagtailCmsragConfig(AppConfig):
    name = "wagtail_cmsrag"
    label = "wagtail_cmsrag"
    verbose_name = "cmsrag webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from . import conf, signals

        signals.connect()
        checks.register(conf.check_settings)
