"""Fetch and list WordPress posts, pages and custom post types through the REST API (`wp/v2`).

Anonymous by default, on purpose: WordPress then answers only what any visitor may read, so a draft, private,
scheduled or trashed post answers 401 — exactly the "not public" signal the pipeline needs, with no status
logic of ours to get wrong. With a username and application password, private posts become readable too;
every document fetched that way carries the site's audience, since plugins may render members-only parts
into `content.rendered` for a logged-in user. WordPress treats credentials it rejects as no credentials at all
(it answers as to a visitor), so they are checked once, loudly, before private posts would silently vanish.

Source ids are `"<rest base>:<id>"` ("posts:12", "pages:7", "docs:40" for a custom type); a bare "12" tries the
site's post types in turn (WordPress ids are unique across types). Documents carry the canonical form.

Not public means WordPress said so: a JSON REST error with 401/403/404, or 410. The same statuses with an HTML
body come from something else (a proxy, a firewall, no REST API at all) and raise `PermanentError`, so an
outage of that kind never empties the index.

`/wp-json/` exists only with pretty permalinks; with plain ones WordPress redirects it to the home page (200
HTML) and other servers answer 404 HTML. The same routes always work as `/?rest_route=`: the first non-JSON
answer switches the source to that form.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from shared.errors import ConfigError, NotPublic, PermanentError
from shared.models import ListedDocument, SourceDocument
from shared.sites import SiteConfig
from shared.sources.http import HttpClient, Response

SOURCE_ID_RE = re.compile(r"^(?:(?P<base>[a-z0-9_-]+):)?(?P<id>[1-9][0-9]*)$")
NOT_PUBLIC_STATUSES = frozenset({401, 403, 404, 410})


class WordPressSource:
    """A `Source` for one WordPress site."""

    def __init__(self, site: SiteConfig, client: HttpClient, max_bytes: int, *, page_size: int = 100) -> None:
        if not site.url:
            raise ConfigError([f"site {site.name!r}: kind wordpress needs url"])
        self.site = site
        self.client = client
        self.max_bytes = max_bytes
        self.page_size = page_size
        self.base_url = site.url.rstrip("/")
        self.authenticated = bool(site.username and site.app_password)
        if self.authenticated and client.session.auth is None:
            client.session.auth = (site.username or "", site.app_password or "")
        self.statuses = ("publish", "private") if self.authenticated else ("publish",)
        self.use_rest_route = False
        self._credentials_ok = not self.authenticated

    def fetch(self, source_id: str) -> SourceDocument:
        """The public (or, with credentials, private) state of one post; see the module docstring."""
        m = SOURCE_ID_RE.match(source_id.strip())
        if not m:
            raise PermanentError(f"{self.site.name}/{source_id}: not a WordPress id (expected e.g. 'posts:12')",
                                 stage="fetch")
        bases = [m["base"]] if m["base"] else list(self.site.post_types)
        self._check_credentials()
        # context=view: an editor's credentials must still get what readers see, not the raw edit form.
        params = {"context": "view"} if self.authenticated else None
        for base in bases:
            resp = self._get(f"/wp/v2/{base}/{m['id']}", params)
            if resp.status == 404 and len(bases) > 1 and _is_json(resp):
                continue  # a bare id: not this post type, try the next
            return self._document(f"{base}:{m['id']}", resp)
        raise NotPublic(self.site.name, source_id, f"no {' or '.join(bases)} with id {m['id']}")

    def list_documents(self, since: datetime | None = None,
                       types: tuple[str, ...] | None = None) -> Iterator[ListedDocument]:
        """Every readable document of `types` (REST bases; default the site's), modified strictly after `since`.

        Paged by id, oldest first, so a post published meanwhile lands on the last page instead of shifting the
        pages already read.
        """
        self._check_credentials()
        for base in types or self.site.post_types:
            page, pages = 1, 1
            while page <= pages:
                params: dict[str, Any] = {
                    "per_page": self.page_size, "page": page, "status": ",".join(self.statuses),
                    "_fields": "id,modified_gmt,type", "orderby": "id", "order": "asc"}
                if since is not None:
                    params["modified_after"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                resp = self._get(f"/wp/v2/{base}", params)
                if resp.status == 400 and page > 1:
                    break  # rest_post_invalid_page_number: the listing shrank while we paged
                if resp.status != 200:
                    raise PermanentError(f"{resp.url}: cannot list {base} ({_describe(resp)})", stage="list")
                items = _json(resp)
                if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
                    raise PermanentError(f"{resp.url}: expected a JSON list of {base} with ids", stage="list")
                for item in items:
                    yield ListedDocument(source_id=f"{base}:{item['id']}",
                                         modified_at=parse_gmt(item.get("modified_gmt")),
                                         doc_type=str(item.get("type") or base))
                total = resp.headers.get("x-wp-totalpages", "")
                pages = int(total) if total.isdigit() else page
                page += 1

    def _check_credentials(self) -> None:
        if self._credentials_ok:
            return
        resp = self._get("/wp/v2/users/me", {"_fields": "id"})
        if resp.status != 200:
            raise PermanentError(f"{self.site.name}: WordPress did not accept the application password of "
                                 f"{self.site.username!r} ({_describe(resp)})", stage="fetch")
        self._credentials_ok = True

    def _get(self, route: str, params: dict[str, Any] | None) -> Response:
        if not self.use_rest_route:
            resp = self.client.get(f"{self.base_url}/wp-json{route}", params=params)
            if _is_json(resp) or resp.status not in (200, 404):
                return resp
        resp = self.client.get(f"{self.base_url}/", params={"rest_route": route, **(params or {})})
        self.use_rest_route = self.use_rest_route or _is_json(resp)
        return resp

    def _document(self, source_id: str, resp: Response) -> SourceDocument:
        if resp.status in NOT_PUBLIC_STATUSES and (_is_json(resp) or resp.status == 410):
            raise NotPublic(self.site.name, source_id, _describe(resp))
        if resp.status != 200:
            raise PermanentError(f"{resp.url}: unexpected answer ({_describe(resp)}); "
                                 "is this a WordPress REST API?", stage="fetch")
        data = _json(resp)
        if not isinstance(data, dict) or not isinstance(data.get("content"), dict):
            raise PermanentError(f"{resp.url}: JSON is not a WordPress post (no content object)", stage="fetch")
        if data.get("status") not in self.statuses:
            raise NotPublic(self.site.name, source_id, f"status is {data.get('status')!r}")
        if data["content"].get("protected"):
            raise NotPublic(self.site.name, source_id, "password-protected")
        body = str(data["content"].get("rendered") or "")
        if len(body.encode("utf-8")) > self.max_bytes:
            raise PermanentError(f"{resp.url}: content is over the {self.max_bytes}-byte cap", stage="fetch")
        title = data.get("title")
        return SourceDocument(
            site=self.site.name, source_id=source_id, url=str(data.get("link") or resp.url),
            title=html.unescape(str(title.get("rendered", "") if isinstance(title, dict) else title or "")),
            html=body, doc_type=str(data.get("type") or source_id.split(":")[0]), language=self.site.language,
            modified_at=parse_gmt(data.get("modified_gmt")), audience=self.site.audience,
        )


def parse_gmt(value: Any) -> datetime | None:
    """WordPress's `modified_gmt` ("2024-01-15T09:01:00", no zone, UTC) as an aware datetime; None if unusable."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _is_json(resp: Response) -> bool:
    return "json" in resp.headers.get("content-type", "")


def _json(resp: Response) -> Any:
    # Invalid UTF-8 inside a post (legacy latin-1 rows) must not lose the whole document, nor must a BOM a
    # plugin printed before the JSON; garbage still raises PermanentError naming what came instead.
    return dataclasses.replace(resp, body=resp.body.decode("utf-8-sig", "replace").encode("utf-8")).json()


def _describe(resp: Response) -> str:
    """"HTTP 401 rest_forbidden" for a WordPress error, the status and content type otherwise."""
    code = ""
    if _is_json(resp):
        try:
            data = _json(resp)
            code = str(data.get("code", "")) if isinstance(data, dict) else ""
        except PermanentError:
            pass
    return f"HTTP {resp.status} {code or resp.headers.get('content-type', 'no content type')}".strip()
