"""What the API's request handlers share, built once per app: the index, the asker, access control.

Kept on `app.extensions["cmsrag"]` so blueprints reach it through `services()` instead of module globals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import current_app

from services.api.filters import Filters

if TYPE_CHECKING:
    from services.api.access import Access
    from services.api.answer import Asker
    from services.cli.app import App
    from shared.settings import Settings


@dataclass
class Services:
    app: App
    asker: Asker
    access: Access
    vector_type: str

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def site_names(self) -> list[str]:
        return [s.name for s in self.app.settings.sites]

    def scoped(self, caller: Any, filters: Filters) -> Filters:
        """`filters` within what `caller` may read: a named site it may not read is a 403, not an empty result."""
        for site in filters.sites or ():
            self.access.authorize(caller, site)
        return filters.within(caller.sites)


def services() -> Services:
    found: Services = current_app.extensions["cmsrag"]
    return found
