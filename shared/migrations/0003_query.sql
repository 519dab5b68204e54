-- The query service's state: API keys, shared rate-limit buckets, and the answer cache.

-- API keys: only a SHA-256 of the key is stored (keys are 256-bit random, so a plain hash cannot be brute
-- forced); `prefix` is the public part shown by `cmsrag keys list` and used to find the row.
CREATE TABLE api_keys (
    id           bigserial PRIMARY KEY,
    prefix       text        NOT NULL UNIQUE,
    key_hash     text        NOT NULL,
    name         text        NOT NULL,
    sites        text[],                      -- NULL: every site
    rate         text,                        -- NULL: CMSRAG_RATE_KEY
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- GCRA state per bucket ("key:<id>", "ip:<addr>"): the theoretical arrival time. Shared by every API replica;
-- unlogged because losing it in a crash only forgives a few requests.
CREATE UNLOGGED TABLE rate_limits (
    bucket text        PRIMARY KEY,
    tat    timestamptz NOT NULL
);

-- Answers by (normalised question, filters, model, the retrieved passages' content hashes). `chunk_ids` are the
-- passages the answer was built from: deleting any of those chunks (an edit replaces a document's chunks, an
-- unpublish removes them) deletes the answer in the same transaction, by the trigger below. So a cached answer
-- can never outlive, or leak, the content it quotes.
CREATE TABLE answer_cache (
    key        text        PRIMARY KEY,
    question   text        NOT NULL,
    response   jsonb       NOT NULL,
    chunk_ids  bigint[]    NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    hits       integer     NOT NULL DEFAULT 0
);
CREATE INDEX answer_cache_chunks ON answer_cache USING gin (chunk_ids);
CREATE INDEX answer_cache_created ON answer_cache (created_at);

CREATE FUNCTION purge_answer_cache() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM answer_cache WHERE chunk_ids && (SELECT coalesce(array_agg(id), '{}') FROM gone);
    RETURN NULL;
END $$;

CREATE TRIGGER chunks_purge_answer_cache AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION purge_answer_cache();
CREATE TRIGGER chunks_update_purge_answer_cache AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION purge_answer_cache();
