"""API v2 first, admin next, Wagtail's page serving last: its catch-all would otherwise swallow `/api/v2/`."""

from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.api.v2.router import WagtailAPIRouter
from wagtail.api.v2.views import PagesAPIViewSet

api_router = WagtailAPIRouter("wagtailapi")
api_router.register_endpoint("pages", PagesAPIViewSet)

urlpatterns = [
    path("api/v2/", api_router.urls),
    path("admin/", include(wagtailadmin_urls)),
    path("", include(wagtail_urls)),
]
