"""The header-only parts of the access decision: which key was sent, who the client is, and CORS."""

from __future__ import annotations

import pytest

from services.api.access import address_bucket, client_address, cors_headers, presented_key
from shared.errors import AccessDenied

KEY = "cmsrag_abcdefgh_" + "x" * 43


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, None),
    ({"Authorization": f"Bearer {KEY}"}, KEY),
    ({"authorization": f"bearer   {KEY} "}, KEY),
    ({"X-API-Key": KEY}, KEY),
    ({"x-api-key": f" {KEY}"}, KEY),
    ({"Authorization": f"Bearer {KEY}", "X-API-Key": KEY}, KEY),
    ({"Authorization": "Basic dXNlcjpwdw=="}, None),  # a proxy's credentials, not ours
    ({"Authorization": "Basic dXNlcjpwdw==", "X-API-Key": KEY}, KEY),
])
def test_the_presented_key_comes_from_bearer_or_x_api_key(headers, expected):
    assert presented_key(headers) == expected


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer"},
    {"X-API-Key": "  "},
    {"Authorization": f"Bearer {KEY}", "X-API-Key": KEY + "y"},
])
def test_empty_or_conflicting_keys_are_refused_with_401(headers):
    with pytest.raises(AccessDenied) as info:
        presented_key(headers)
    assert info.value.status == 401 and KEY not in str(info.value)


@pytest.mark.parametrize(("xff", "remote", "hops", "expected"), [
    (None, "10.0.0.9", 0, "10.0.0.9"),
    ("6.6.6.6", "10.0.0.9", 0, "10.0.0.9"),  # no proxy trusted: the header is the client's claim
    ("203.0.113.7", "10.0.0.9", 1, "203.0.113.7"),
    ("6.6.6.6, 203.0.113.7", "10.0.0.9", 1, "203.0.113.7"),  # the left entry is spoofed
    ("6.6.6.6, 203.0.113.7, 10.0.0.2", "10.0.0.9", 2, "203.0.113.7"),
    ("203.0.113.7", "10.0.0.9", 2, "10.0.0.9"),  # shorter than the proxy chain: did not come through it
    (None, "10.0.0.9", 1, "10.0.0.9"),
    ("", "10.0.0.9", 1, "10.0.0.9"),
    ("unknown", "10.0.0.9", 1, "10.0.0.9"),
    ("203.0.113.7:5123", "10.0.0.9", 1, "203.0.113.7"),
    ("[2001:db8::7]:443", "10.0.0.9", 1, "2001:db8::7"),
    ("2001:db8::7", "10.0.0.9", 1, "2001:db8::7"),
    (None, None, 1, None),
])
def test_the_client_address_is_the_nth_forwarded_entry_from_the_right(xff, remote, hops, expected):
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    assert client_address(headers, remote, hops) == expected


@pytest.mark.parametrize(("address", "bucket"), [
    ("203.0.113.7", "ip:203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "ip:2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "ip:203.0.113.7"),
    (None, "ip:unknown"),
    ("not an address", "ip:unknown"),
])
def test_public_buckets_are_per_ipv4_address_and_per_ipv6_slash_64(address, bucket):
    assert address_bucket(address) == bucket


ALLOWED = ("https://example.org", "https://shop.example.org")


@pytest.mark.parametrize(("origin", "allowed", "allow_origin"), [
    ("https://example.org", ALLOWED, "https://example.org"),
    ("https://EXAMPLE.org", ALLOWED, "https://EXAMPLE.org"),
    ("https://shop.example.org", ALLOWED, "https://shop.example.org"),
    ("https://evil.example", ALLOWED, None),
    ("http://example.org", ALLOWED, None),
    ("https://example.org.evil.example", ALLOWED, None),
    ("null", ALLOWED, None),
    (None, ALLOWED, None),
    ("https://anyone.example", ("*",), "*"),
    (None, ("*",), "*"),
    ("https://example.org", (), None),
])
def test_cors_allows_only_configured_origins(origin, allowed, allow_origin):
    headers = cors_headers(origin, allowed)
    assert headers.get("Access-Control-Allow-Origin") == allow_origin
    if allowed != ("*",):
        assert headers["Vary"] == "Origin", "caches must key on Origin whenever the answer depends on it"
    if allow_origin is None:
        assert set(headers) == {"Vary"}
    else:
        assert headers["Access-Control-Allow-Headers"] == "Content-Type, Authorization, X-API-Key"
        assert headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
        assert headers["Access-Control-Expose-Headers"] == (
            "Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset")
        assert int(headers["Access-Control-Max-Age"]) > 0
