"""Content operations for tests, run inside the site (`WagtailServer.shell`) the way an editor's actions run.

Pages go through Wagtail's own publishing path, so signals fire as they would for an editor: a page is created
as a draft (`live=False`) and then its revision is published. `add_child` alone would make it live without
`page_published`, which would hide exactly the webhook bugs the end-to-end tests are for.
"""

import json
from typing import Any

from django.utils.text import slugify
from wagtail.models import Page, Site

from app.models import ArticlePage, NotePage


def home_id() -> int:
    """The default site's root page: where new pages go unless told otherwise."""
    return int(Site.objects.get(is_default_site=True).root_page_id)


def create_article(title: str, body: list[dict[str, Any]], *, intro: str = "", slug: str | None = None,
                   parent_id: int | None = None, publish: bool = True) -> int:
    """A new `ArticlePage` (body in the API's own form: `[{"type": "heading", "value": {...}}, ...]`); its id."""
    page = ArticlePage(title=title, slug=slug or slugify(title), intro=intro, body=json.dumps(body), live=False)
    return _add(page, parent_id, publish)


def create_note(title: str, text: str, *, slug: str | None = None, parent_id: int | None = None,
                publish: bool = True) -> int:
    """A new `NotePage` whose rich text is `text` (stored form: `<a linktype="page" id="3">`); its id."""
    page = NotePage(title=title, slug=slug or slugify(title), text=text, live=False)
    return _add(page, parent_id, publish)


def edit(page_id: int, *, publish: bool = True, **fields: Any) -> None:
    """Change fields of the latest revision; publish it, or leave it as a draft (the API keeps the live copy)."""
    page = Page.objects.get(id=page_id).specific.get_latest_revision_as_object()
    for name, value in fields.items():
        setattr(page, name, json.dumps(value) if name == "body" else value)
    revision = page.save_revision()
    if publish:
        revision.publish()


def publish(page_id: int) -> None:
    """Publish the latest revision (sends `page_published`)."""
    Page.objects.get(id=page_id).specific.save_revision().publish()


def unpublish(page_id: int) -> None:
    """Take the page (not its children) offline (sends `page_unpublished`)."""
    Page.objects.get(id=page_id).specific.unpublish()


def delete(page_id: int) -> None:
    """Delete the page and its descendants (sends `pre_delete`/`post_delete` for each)."""
    Page.objects.get(id=page_id).specific.delete()


def _add(page: Page, parent_id: int | None, publish: bool) -> int:
    parent = Page.objects.get(id=parent_id or home_id()).specific
    parent.add_child(instance=page)
    if publish:
        page.save_revision().publish()
    else:
        page.save_revision()
    return int(page.id)
