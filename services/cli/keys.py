"""`cmsrag keys create|list|revoke`: API keys for the query service.

A key is printed once, when it is created; only its SHA-256 is kept, so a lost key is revoked and replaced, never
recovered. Site names and rates are checked here, against the settings, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from services.api import keys
from services.cli.app import App
from shared.query_settings import Rate

WARNING = "store this key now: it cannot be shown again (only its SHA-256 is kept)"


def rate_arg(value: str) -> str:
    """argparse type for `--rate`: a usage error (exit 2) that shows the expected form."""
    try:
        Rate.parse(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a rate such as '60/min' or '60/min,burst=10'") from None
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `keys` subcommands, wired by `build_parser()`."""
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = sub.add_parser("create", help="create a key and print it once")
    c.add_argument("--name", required=True, help="who or what uses the key, e.g. 'intranet widget'")
    c.add_argument("--site", action="append", help="a site the key may read (repeat; default: every site)")
    c.add_argument("--rate", type=rate_arg, help="e.g. '60/min,burst=10' (default: CMSRAG_RATE_KEY)")
    c.add_argument("--json", action="store_true")
    ls = sub.add_parser("list", help="list keys (never their secrets)")
    ls.add_argument("--json", action="store_true")
    r = sub.add_parser("revoke", help="revoke a key at once, on every API replica")
    r.add_argument("key", metavar="PREFIX_OR_ID")
    r.add_argument("--json", action="store_true")


def cmd_keys(app: App, args: argparse.Namespace) -> int:
    if args.action == "create":
        return _create(app, args)
    with app.db.connection() as conn:
        found = keys.list_keys(conn) if args.action == "list" else [keys.revoke_key(conn, args.key)]
    if args.json:
        payload: Any = [as_dict(k) for k in found]
        print(json.dumps(payload if args.action == "list" else payload[0], indent=2))
    elif args.action == "revoke":
        k = found[0]
        print(f"revoked API key {k.prefix} ({k.name}) at {_when(k.revoked_at)}; it no longer works")
    else:
        _print_table(app, found)
    return 0


def _create(app: App, args: argparse.Namespace) -> int:
    sites = [app.settings.site(s).name for s in args.site] if args.site else None  # UnknownSite names the real ones
    with app.db.connection() as conn:
        raw, key = keys.create_key(conn, args.name, sites, args.rate)
    if args.json:
        print(json.dumps({**as_dict(key), "key": raw}, indent=2))
        print(WARNING, file=sys.stderr)
        return 0
    print(f"created API key {key.prefix} ({key.name}): sites {_sites(key.sites)}, "
          f"rate {key.rate or _default_rate(app)}")
    print(f"\n    {raw}\n")
    print(WARNING)
    return 0


def as_dict(key: keys.ApiKey) -> dict[str, Any]:
    return {"id": key.id, "prefix": key.prefix, "name": key.name,
            "sites": list(key.sites) if key.sites is not None else None, "rate": key.rate,
            "created_at": _iso(key.created_at), "last_used_at": _iso(key.last_used_at),
            "revoked_at": _iso(key.revoked_at)}


def _print_table(app: App, found: list[keys.ApiKey]) -> None:
    if not found:
        print("no API keys (create one with `cmsrag keys create --name NAME`)")
        return
    print(f"{'id':>4}  {'prefix':<9} {'name':<20} {'sites':<20} {'rate':<18} {'created':<17} "
          f"{'last used':<17} revoked")
    for k in found:
        print(f"{k.id:>4}  {k.prefix:<9} {k.name[:20]:<20} {_sites(k.sites)[:20]:<20} "
              f"{(k.rate or 'default')[:18]:<18} {_when(k.created_at):<17} {_when(k.last_used_at):<17} "
              f"{_when(k.revoked_at)}")
    print(f"(default rate: {_default_rate(app)})")


def _default_rate(app: App) -> str:
    r = app.settings.query.key_rate
    return f"{r.per_minute}/min,burst={r.burst} (default)"


def _sites(sites: tuple[str, ...] | None) -> str:
    return ",".join(sites) if sites is not None else "all"


def _when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M}" if t is not None else "-"


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None
