"""The OpenAPI 3.1 document served at `/openapi.json`.

Written by hand, next to the code it describes, and kept true by `tests/integration/test_openapi.py`: the
document must be valid, list exactly the app's routes, and every response the tests provoke must match the
schema documented for its status.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/responses/Error"}
LIMITED = {"$ref": "#/components/responses/RateLimited"}
ERRORS = {"401": ERROR, "403": ERROR, "413": ERROR, "415": ERROR, "422": ERROR, "429": LIMITED, "503": ERROR}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


STRING = {"type": "string"}
NAMES = {"oneOf": [STRING, {"type": "array", "items": STRING, "minItems": 1, "maxItems": 50}]}
SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"],
              "properties": {"error": STRING, "retry_after": {"type": "integer"}}},
    "Filters": {"type": "object", "additionalProperties": False, "properties": {
        "site": NAMES, "type": NAMES, "language": STRING,
        "modified_after": {"type": "string", "format": "date-time"},
        "modified_before": {"type": "string", "format": "date-time"}}},
    "SearchRequest": {"type": "object", "required": ["query"], "additionalProperties": False, "properties": {
        "query": {"type": "string", "minLength": 1, "maxLength": 2000},
        "k": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
        "mode": {"enum": ["hybrid", "vector", "fulltext"], "default": "hybrid"},
        "filters": _ref("Filters")}},
    "Passage": {"type": "object", "required": ["title", "url", "snippet", "score", "site"], "properties": {
        "title": STRING, "url": {"type": "string", "description": "the page URL with the section anchor"},
        "snippet": STRING, "score": {"type": "number"}, "similarity": {"type": "number"}, "site": STRING,
        "source_id": STRING, "heading_path": {"type": "array", "items": STRING}}},
    "SearchResponse": {"type": "object", "required": ["query", "results"], "properties": {
        "query": STRING, "mode": STRING, "filters": {"type": "object"},
        "results": {"type": "array", "items": _ref("Passage")}}},
    "Turn": {"type": "object", "required": ["role", "content"], "additionalProperties": False,
             "properties": {"role": {"enum": ["user", "assistant"]}, "content": STRING}},
    "AskRequest": {"type": "object", "required": ["question"], "additionalProperties": False, "properties": {
        "question": {"type": "string", "minLength": 1, "maxLength": 1000},
        "filters": _ref("Filters"),
        "conversation": {"type": "array", "items": _ref("Turn"), "maxItems": 20}}},
    "Citation": {"type": "object", "required": ["n", "title", "url", "snippet"], "properties": {
        "n": {"type": "integer", "minimum": 1}, "title": STRING, "url": STRING, "snippet": STRING,
        "section": {"type": "string", "description": "the passage's heading within the page"}}},
    "Answer": {"type": "object", "required": ["answer", "citations", "mode", "refused", "cached"], "properties": {
        "answer": {"type": "string", "description": "text with inline markers [n] naming citations"},
        "citations": {"type": "array", "items": _ref("Citation")},
        "mode": {"enum": ["extractive", "anthropic", "openai", "openai-compatible"]},
        "model": STRING, "refused": {"type": "boolean"}, "cached": {"type": "boolean"},
        "fallback": {"type": "boolean"},
        "usage": {"type": "object", "properties": {"input_tokens": {"type": "integer"},
                                                   "output_tokens": {"type": "integer"},
                                                   "cost_usd": {"type": "number"}}},
        "timings": {"type": "object", "additionalProperties": {"type": "number"}}}},
    "IndexHealth": {"type": "object", "required": ["status", "sites"], "properties": {
        "status": {"enum": ["ok", "degraded"]},
        "sites": {"type": "array", "items": {"type": "object", "required": ["site", "documents", "drift"],
                                             "properties": {"site": STRING, "documents": {"type": "integer"},
                                                            "chunks": {"type": "integer"},
                                                            "failures": {"type": "integer"},
                                                            "last_indexed": {"type": ["string", "null"]},
                                                            "drift": {"type": "object"}}}}}},
    "Status": {"type": "object", "required": ["status"], "properties": {"status": STRING}},
}
SSE = {"description": "Server-Sent Events: `sources` ({citations}), then `token` ({text})…, then `done` (an "
                      "Answer); `error` ({error, status}) if the answer fails after the stream started.",
       "content": {"text/event-stream": {"schema": {"type": "string"}}}}
STREAM_PARAMS = [{"name": n, "in": "query", "required": n == "q",
                  "schema": {"type": "string", "minLength": 1, "maxLength": 1000} if n == "q" else STRING}
                 for n in ("q", "site", "type", "language")]


def openapi_document() -> dict[str, Any]:
    secured: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}, {}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "cmsrag query API", "version": "1.0.0",
                 "description": "Search and ask a website's own content, with citations. Public callers (no key) "
                                "get stricter rate limits; keys are created with `cmsrag keys create`."},
        "paths": {
            "/v1/search": {"post": {"summary": "Ranked passages for a query (hybrid, vector or full text)",
                                    "security": secured, "requestBody": _body("SearchRequest"),
                                    "responses": {"200": _json(_ref("SearchResponse")), "400": ERROR, **ERRORS}}},
            "/v1/ask": {"post": {"summary": "An answer with citations", "security": secured,
                                 "requestBody": _body("AskRequest"),
                                 "responses": {"200": _json(_ref("Answer")), "400": ERROR, "502": ERROR, **ERRORS}}},
            "/v1/ask/stream": {
                "post": {"summary": "The answer as Server-Sent Events", "security": secured,
                         "requestBody": _body("AskRequest"), "responses": {"200": SSE, "400": ERROR, **ERRORS}},
                "get": {"summary": "The answer as Server-Sent Events (for EventSource)", "security": secured,
                        "parameters": STREAM_PARAMS, "responses": {"200": SSE, **ERRORS}}},
            "/v1/index/health": {"get": {
                "summary": "Documents, freshness, drift and failures per site", "security": secured,
                "parameters": [{"name": "site", "in": "query", "schema": STRING},
                               {"name": "check", "in": "query", "schema": {"enum": ["cms"]},
                                "description": "also list the CMS and compare it with the index"}],
                "responses": {"200": _json(_ref("IndexHealth")), **ERRORS}}},
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json(_ref("Status"))}}},
            "/readyz": {"get": {"summary": "Readiness (database reachable)",
                                "responses": {"200": _json(_ref("Status")), "503": _json(_ref("Status"))}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (text exposition format; no key, no rate limit: "
                                            "keep it off the public internet, see docs/metrics.md)",
                                 "responses": {"200": {"description": "metrics",
                                                       "content": {"text/plain": {"schema": STRING}}}}}},
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": _json({"type": "object"})}}},
            "/": {"get": {"summary": "The chat page", "parameters": [{"name": "site", "in": "query",
                                                                      "schema": STRING}],
                          "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
            "/widget.js": {"get": {"summary": "The embeddable widget script",
                                   "responses": {"200": {"description": "JavaScript",
                                                         "content": {"text/javascript": {}}}}}},
            "/widget.css": {"get": {"summary": "The widget's styles",
                                    "responses": {"200": {"description": "CSS", "content": {"text/css": {}}}}}},
        },
        "components": {
            "schemas": SCHEMAS,
            "responses": {
                "Error": _json(_ref("Error"), "A refused or failed request; `error` says why"),
                "RateLimited": {**_json(_ref("Error"), "Over the rate limit"),
                                "headers": {"Retry-After": {"schema": {"type": "integer"},
                                                            "description": "seconds to wait"}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }
