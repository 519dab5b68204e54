-- cmsrag schema, version 1. Applied once by `cmsrag migrate`; every later change is a new numbered file.
-- The embedding column is not here: its type and dimension depend on the configured model (see shared/migrate.py).

CREATE EXTENSION IF NOT EXISTS vector;

-- Which embedding model the chunk vectors belong to. One row; changing the model is refused (see migrate.py).
CREATE TABLE index_config (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    embedding_model text        NOT NULL,
    dimensions      integer     NOT NULL CHECK (dimensions > 0),
    vector_type     text        NOT NULL CHECK (vector_type IN ('vector', 'halfvec')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE documents (
    id              bigserial PRIMARY KEY,
    site            text        NOT NULL,
    source_id       text        NOT NULL,
    url             text,
    title           text,
    doc_type        text,
    -- indexed: has chunks; removed: not public any more (tombstone kept for ordering); empty: public, no text
    status          text        NOT NULL CHECK (status IN ('indexed', 'removed', 'empty')),
    language        text,
    audience        text        NOT NULL DEFAULT 'public',
    modified_at     timestamptz,          -- the CMS's own modified time of the stored version
    checksum        text,                 -- sha256 of what was chunked + chunking settings + model
    fetched_at      timestamptz NOT NULL, -- database time when the fetch behind this row began: later wins
    indexed_at      timestamptz NOT NULL DEFAULT now(),
    embedding_model text,
    chunk_count     integer     NOT NULL DEFAULT 0,
    removed_reason  text,
    UNIQUE (site, source_id)
);
CREATE INDEX documents_site_status ON documents (site, status);

CREATE TABLE chunks (
    id            bigserial PRIMARY KEY,
    document_id   bigint      NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal       integer     NOT NULL,
    text          text        NOT NULL,
    token_count   integer     NOT NULL,
    title         text        NOT NULL DEFAULT '',
    heading_path  text[]      NOT NULL DEFAULT '{}',
    headings      text        NOT NULL DEFAULT '',  -- heading_path joined, for the tsvector (array_to_string is not immutable)
    anchor        text,
    content_hash  text        NOT NULL,
    ts_config     regconfig   NOT NULL DEFAULT 'english',
    tsv           tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector(ts_config, title), 'A')
        || setweight(to_tsvector(ts_config, headings), 'B')
        || setweight(to_tsvector(ts_config, text), 'D')
    ) STORED,
    UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_tsv ON chunks USING gin (tsv);
CREATE INDEX chunks_content_hash ON chunks (content_hash);

-- Embeddings by (model, content hash): a re-index after an edit embeds only the chunks whose text changed,
-- and a page that is unpublished and republished costs nothing. Untyped `vector` so any model fits.
CREATE TABLE embedding_cache (
    model        text        NOT NULL,
    content_hash text        NOT NULL,
    embedding    vector      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, content_hash)
);

-- Documents asked for and not yet processed: the queue's state as Postgres sees it. A row is written before
-- the message is published and deleted only by a run that started after the last request, so a lost message
-- leaves a row that reconcile can find.
CREATE TABLE pending (
    site              text        NOT NULL,
    source_id         text        NOT NULL,
    event             text        NOT NULL,
    first_requested   timestamptz NOT NULL DEFAULT now(),
    last_requested    timestamptz NOT NULL DEFAULT now(),
    requests          integer     NOT NULL DEFAULT 1,
    delivery_id       text,
    PRIMARY KEY (site, source_id)
);

-- Work given up on, one open row per document, for an operator to read (`cmsrag failures`) and replay
-- (`cmsrag retry`).
CREATE TABLE failures (
    id             bigserial PRIMARY KEY,
    site           text        NOT NULL,
    source_id      text        NOT NULL,
    stage          text        NOT NULL,
    reason         text        NOT NULL,
    retryable      boolean     NOT NULL,
    attempts       integer     NOT NULL DEFAULT 1,
    last_error     text,
    message_id     text,
    first_failed   timestamptz NOT NULL DEFAULT now(),
    failed_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz
);
CREATE UNIQUE INDEX failures_open ON failures (site, source_id) WHERE resolved_at IS NULL;
