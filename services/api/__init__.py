"""The query service: hybrid retrieval (and, with the query-service issue, /v1/search and /v1/ask)."""
