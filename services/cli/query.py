"""`cmsrag search`: hybrid retrieval from the command line, for people and for scripts (`--json`)."""

from __future__ import annotations

import argparse
import json

from services.api.search import search
from services.cli.app import App
from shared.errors import CmsragError


def cmd_search(app: App, args: argparse.Namespace) -> int:
    query = " ".join(args.query).strip()
    if not query:
        raise CmsragError("search needs some text, e.g. cmsrag search \"how do I define a function\"")
    if len(query) > 2000:
        raise CmsragError(f"query is {len(query)} characters; the limit is 2000")
    if args.site:
        app.settings.site(args.site)
    vtype = app.check_index()
    [vector] = app.embedder.embed([query])
    with app.db.connection() as conn:
        hits = search(conn, vector, query, k=args.k, site=args.site, mode=args.mode, vector_type=vtype)
    if args.json:
        print(json.dumps({"query": query, "mode": args.mode, "results": [h.as_dict() for h in hits]}, indent=2,
                         ensure_ascii=False))
        return 0
    if not hits:
        print("no results")
    for i, h in enumerate(hits, 1):
        where = " > ".join(h.heading_path) or h.title
        print(f"[{i}] {h.title} — {where}  (score {h.score:.4f})\n    {h.link}\n    {h.snippet()}\n")
    return 0


def cmd_api(app: App, args: argparse.Namespace) -> int:
    """Serve the query API and the chat widget with Werkzeug (`gunicorn services.api.wsgi:app` in production)."""
    from services.api.app import serve

    serve(app, host=args.host, port=args.port)
    return 0
