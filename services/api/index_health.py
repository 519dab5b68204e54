"""`GET /v1/index/health`: is the index complete and fresh, per site?

From the database alone (cheap, every call): documents, chunks, last indexed, failures, and the documents the
CMS reported changed that are not indexed yet (`pending`, with the age of the oldest). With `?check=cms`, the
CMS is also listed and compared with the index (the reconcile plan, nothing queued): documents new, changed
after their last index, or gone from the CMS — the drift a lost webhook would leave behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.ingest.reconcile import indexed_documents, plan
from shared.errors import CmsragError

if TYPE_CHECKING:
    from services.cli.app import App


def index_health(app: App, sites: list[str], *, check_cms: bool = False) -> dict[str, Any]:
    from services.cli.admin import site_summary

    summaries = [s for s in site_summary(app) if s["site"] in sites]
    for s in summaries:
        s["drift"] = {"pending": s["pending"], "oldest_pending_seconds": s["oldest_pending_seconds"]}
        if check_cms:
            s["drift"].update(_cms_drift(app, s["site"]))
    ok = all(s["failures"] == 0 and not s["drift"].get("error") and not s["drift"].get("changed_in_cms")
             and not s["drift"].get("missing_from_index") and not s["drift"].get("gone_from_cms")
             for s in summaries)
    return {"status": "ok" if ok else "degraded", "sites": summaries}


def _cms_drift(app: App, site: str) -> dict[str, Any]:
    from services.cli.indexing import list_site

    try:
        listed = list_site(app, site, quiet=True)
    except CmsragError as exc:
        return {"cms_checked": False, "error": f"cannot list the CMS: {exc}"}
    with app.db.connection() as conn:
        p = plan(listed, indexed_documents(conn, site))
    return {"cms_checked": True, "listed_in_cms": p.listed, "missing_from_index": len(p.new),
            "changed_in_cms": len(p.changed), "gone_from_cms": len(p.gone),
            "examples": (p.new + p.changed + p.gone)[:10]}
