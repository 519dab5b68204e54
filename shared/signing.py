"""Webhook signatures in the Standard Webhooks style, shared by the receiver and the Python senders.

Headers: `webhook-id` (unique per event; retries keep it), `webhook-timestamp` (Unix seconds) and
`webhook-signature`: space-separated `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, one per
active secret, so secrets can be rotated without downtime. A secret written `whsec_<base64>` (the standard's
form) is used as its decoded bytes; any other secret as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

DEFAULT_TOLERANCE = 300  # seconds either side of now


class SignatureError(Exception):
    """Raised when a webhook's signature headers are missing, malformed, stale or do not match."""


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[6:], validate=True)
        except (binascii.Error, ValueError):
            pass
    return secret.encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign(secrets: Sequence[str], msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three headers for `body`, signed with every secret given."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": " ".join(signature(s, msg_id, ts, body) for s in secrets)}


def verify(secrets: Sequence[str], headers: Mapping[str, str], body: bytes, *,
           tolerance: int = DEFAULT_TOLERANCE, now: float | None = None) -> str:
    """Return the webhook id if one signature matches one secret; raise `SignatureError` saying why not."""
    get = {k.lower(): v for k, v in headers.items()}.get
    msg_id, ts_raw, sig_header = get("webhook-id"), get("webhook-timestamp"), get("webhook-signature")
    missing = [n for n, v in (("webhook-id", msg_id), ("webhook-timestamp", ts_raw),
                              ("webhook-signature", sig_header)) if not v]
    if missing:
        raise SignatureError(f"missing header(s): {', '.join(missing)}")
    assert msg_id and ts_raw and sig_header
    if len(msg_id) > 200:
        raise SignatureError("webhook-id is longer than 200 characters")
    if not ts_raw.isdigit():
        raise SignatureError("webhook-timestamp must be Unix seconds")
    age = (time.time() if now is None else now) - int(ts_raw)
    if abs(age) > tolerance:
        raise SignatureError(f"webhook-timestamp is {int(age)}s from now; the tolerance is {tolerance}s")
    if not secrets:
        raise SignatureError("no webhook secret is configured for this site")
    given = [part.strip() for part in sig_header.split(" ") if part.strip()]
    for secret in secrets:
        expected = signature(secret, msg_id, int(ts_raw), body)
        if any(hmac.compare_digest(expected, g) for g in given):
            return msg_id
    raise SignatureError("no signature matches")
