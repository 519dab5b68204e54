"""Standard Webhooks signatures, as cmsrag's `shared/signing.py` makes and checks them.

Copied (not imported): this app runs inside the CMS's own environment, where cmsrag is not installed.
`webhook-signature` holds one `v1,<base64 HMAC-SHA256>` per secret, space-separated, so that the receiver
accepts the old and the new secret alike during a rotation. A `whsec_<base64>` secret is used as its
decoded bytes, any other as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence


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


def sign(secrets: Sequence[str], msg_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The three `webhook-*` headers for `body`, signed with every secret given."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets)}
