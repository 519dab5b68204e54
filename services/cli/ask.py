"""`cmsrag ask`: the same answer the API gives, from the command line (`--stream` prints it as it arrives)."""

from __future__ import annotations

import argparse
import json
import sys

from services.api.answer import AskRequest
from services.api.filters import Filters
from services.cli.app import App
from shared.errors import CmsragError


def cmd_ask(app: App, args: argparse.Namespace) -> int:
    question = " ".join(args.question).strip()
    limit = app.settings.query.max_question_chars
    if not question:
        raise CmsragError('ask needs a question, e.g. cmsrag ask "how do I define a function?"')
    if len(question) > limit:
        raise CmsragError(f"the question is {len(question)} characters; the limit is {limit}")
    if args.site:
        app.settings.site(args.site)
    req = AskRequest(question, Filters(sites=(args.site,)) if args.site else Filters())
    done: dict = {}
    for event, data in app.asker.events(req):
        if event == "done":
            done = data
        elif event == "token" and args.stream and not args.json:
            print(data["text"], end="", flush=True)
    if args.json:
        print(json.dumps(done, indent=2, ensure_ascii=False))
        return 0
    if args.stream:
        print()
    else:
        print(done["answer"])
    if done["citations"]:
        print()
        for c in done["citations"]:
            print(f"[{c['n']}] {c['title']} — {c['url']}")
    note = " (cached)" if done.get("cached") else " (fallback: the model failed)" if done.get("fallback") else ""
    print(f"\n{done['mode']}:{done.get('model', '')}{note}", file=sys.stderr)
    return 0
