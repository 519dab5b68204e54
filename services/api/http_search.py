"""Blueprint: `POST /v1/search` (ranked passages) and `GET /v1/index/health`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request

from services.api.context import services
from services.api.index_health import index_health
from services.api.search import search
from services.api.validate import BadRequest, json_object, search_request

bp = Blueprint("search", __name__)


@bp.post("/v1/search")
def v1_search() -> Any:
    s = services()
    req = search_request(json_object(), s.settings.query, s.site_names)
    filters = s.scoped(g.caller, req.filters)
    [vector] = s.app.embedder.embed([req.query])
    with s.app.db.connection() as conn:
        hits = search(conn, vector, req.query, k=req.k, filters=filters, mode=req.mode, vector_type=s.vector_type,
                      min_similarity=s.settings.query.min_similarity)
    return jsonify(query=req.query, mode=req.mode, filters=filters.as_dict(), results=[
        {"title": h.title, "url": h.link, "snippet": h.snippet(), "score": round(h.score, 6),
         "similarity": round(h.similarity, 4), "site": h.site, "source_id": h.source_id,
         "heading_path": h.heading_path} for h in hits])


@bp.get("/v1/index/health")
def v1_index_health() -> Any:
    s = services()
    unknown = set(request.args) - {"site", "check"}
    if unknown:
        raise BadRequest(f"unknown parameters: {', '.join(sorted(unknown))} (allowed: check, site)")
    check = request.args.get("check")
    if check not in (None, "cms"):
        raise BadRequest("'check' must be 'cms' (list the CMS and compare) or absent")
    sites = sorted(g.caller.sites) if g.caller.sites is not None else list(s.site_names)
    if site := request.args.get("site"):
        if site not in s.site_names:
            raise BadRequest(f"unknown site {site!r}; configured sites: {', '.join(s.site_names)}")
        s.access.authorize(g.caller, site)
        sites = [site]
    return jsonify(index_health(s.app, sites, check_cms=check == "cms"))
