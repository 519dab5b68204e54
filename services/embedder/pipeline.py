"""The indexing pipeline: fetch → clean → chunk → embed → store, for one document or a batch of them.

Actors call `sync` (one document, errors raised so the queue retries) or `sync_batch` (backfill: chunks of
many documents embedded together; per-document errors returned, not raised). Every run is idempotent: the
worker always asks the CMS for the current public state, so duplicated, reordered or replayed messages
converge on the same index.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from services.embedder import store
from services.embedder.chunk import chunk
from services.embedder.clean import clean
from services.embedder.embed import EmbedStats, embed_chunks
from shared import metrics
from shared.db import Database
from shared.embedders import Embedder
from shared.errors import CmsragError, NotPublic, PermanentError, PipelineError, TransientError
from shared.logs import get_logger
from shared.models import Chunk, DocRef, SourceDocument
from shared.settings import Settings
from shared.sources import Source, make_source

log = get_logger(__name__)
REMOVE_EVENTS = frozenset({"delete", "deleted"})


@dataclass
class Outcome:
    """What happened to one document: `action` is indexed, unchanged, empty, stale, removed, absent or failed."""

    ref: DocRef
    action: str = "pending"
    chunks: int = 0
    stats: EmbedStats = field(default_factory=EmbedStats)
    error: PipelineError | None = None
    seconds: float = 0.0
    started: datetime | None = None  # database time the run began; bookkeeping clears requests made before it
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


@dataclass
class _Prepared:
    ref: DocRef
    started: datetime
    doc: SourceDocument
    chunks: list[Chunk]
    checksum: str


@contextmanager
def stage(name: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Tag errors with the stage they came from; unknown crashes in pure stages are permanent, I/O ones transient.

    With `timings`, the time spent is added under the stage's name (logged and observed per document)."""
    t0 = time.perf_counter()
    try:
        yield
    except (PipelineError, NotPublic):
        raise
    except psycopg.OperationalError as exc:
        raise TransientError(f"database unavailable: {exc}", stage=name) from exc
    except (UnicodeError, ValueError) as exc:
        raise PermanentError(f"{exc.__class__.__name__}: {exc}", stage=name) from exc
    except CmsragError as exc:  # unknown site, index built for another model: retrying cannot help
        raise PermanentError(str(exc), stage=name) from exc
    except Exception as exc:
        cls = PermanentError if name in ("clean", "chunk") else TransientError
        raise cls(f"{exc.__class__.__name__}: {exc}", stage=name) from exc
    finally:
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


class Pipeline:
    """Holds the long-lived parts (database pool, embedder, one HTTP session per site)."""

    def __init__(self, settings: Settings, db: Database, embedder: Embedder,
                 source_factory: Callable[[str], Source] | None = None) -> None:
        self.settings = settings
        self.db = db
        self.embedder = embedder
        self._sources: dict[str, Source] = {}
        self.totals: Counter[str] = Counter()  # seconds per stage and documents per action, for this process
        self._totals_lock = threading.Lock()
        self._source_factory = source_factory or (lambda name: make_source(settings.site(name), settings))

    def source(self, site: str) -> Source:
        if site not in self._sources:
            self._sources[site] = self._source_factory(site)
        return self._sources[site]

    def sync(self, ref: DocRef, event: str = "update") -> Outcome:
        """Bring one document in step with its CMS. Raises `PipelineError` for the queue's retry policy."""
        t0 = time.perf_counter()
        with stage("store"):
            started = self.db.now()
        outcome = Outcome(ref, started=started)
        prepared = self._prepare(ref, event, started, outcome)
        if prepared is not None:
            with stage("embed", outcome.timings), self.db.connection() as conn:
                prepared.chunks, outcome.stats = embed_chunks(conn, self.embedder, prepared.chunks)
            self._store(prepared, outcome)
            if outcome.action in ("indexed", "empty") and prepared.doc.modified_at is not None:
                # CMS modified time → searchable, on the database's clock (`started` + time since). Backfill
                # (sync_batch) is left out: a years-old page indexed today is not years of lag.
                searchable = started + timedelta(seconds=time.perf_counter() - t0)
                metrics.freshness_lag(ref.site, (searchable - prepared.doc.modified_at).total_seconds())
        outcome.seconds = time.perf_counter() - t0
        self._log(outcome)
        return outcome

    def sync_batch(self, site: str, source_ids: list[str]) -> list[Outcome]:
        """Index many documents of one site, embedding all their new chunks in shared batches."""
        outcomes, ready = [], []
        for source_id in source_ids:
            outcome = Outcome(DocRef(site, source_id))
            outcomes.append(outcome)
            try:
                with stage("store"):
                    outcome.started = self.db.now()
                prepared = self._prepare(outcome.ref, "update", outcome.started, outcome)
            except PipelineError as exc:
                outcome.action, outcome.error = "failed", exc
                continue
            if prepared is not None:
                ready.append((prepared, outcome))
        self._embed_together(ready)
        for prepared, outcome in ready:
            if outcome.error is None:
                try:
                    self._store(prepared, outcome)
                except PipelineError as exc:
                    outcome.action, outcome.error = "failed", exc
        for o in outcomes:
            o.seconds = sum(o.timings.values())
            self._log(o)
        return outcomes

    def _embed_together(self, ready: list[tuple[_Prepared, Outcome]]) -> None:
        all_chunks = [c for p, _ in ready for c in p.chunks]
        batch_timings: dict[str, float] = {}
        try:
            with stage("embed", batch_timings), self.db.connection() as conn:
                embedded, stats = embed_chunks(conn, self.embedder, all_chunks)
        except PermanentError:
            # One poison document must not fail the whole batch: fall back to one call per document.
            for prepared, outcome in ready:
                try:
                    with stage("embed"), self.db.connection() as conn:
                        prepared.chunks, outcome.stats = embed_chunks(conn, self.embedder, prepared.chunks)
                except PipelineError as exc:
                    outcome.action, outcome.error = "failed", exc
            return
        except PipelineError as exc:
            for _, outcome in ready:
                outcome.action, outcome.error = "failed", exc
            return
        it = iter(embedded)
        unclaimed = set(stats.new_hashes)
        for prepared, outcome in ready:
            prepared.chunks = [next(it) for _ in prepared.chunks]
            mine = {c.content_hash for c in prepared.chunks} & unclaimed
            unclaimed -= mine
            outcome.stats = EmbedStats(embedded=len(mine), reused=len(prepared.chunks) - len(mine),
                                       new_hashes=frozenset(mine))
            # the batch's embedding time, shared out by each document's share of its chunks
            outcome.timings["embed"] = batch_timings["embed"] * len(prepared.chunks) / max(1, len(all_chunks))

    def _prepare(self, ref: DocRef, event: str, started: datetime, outcome: Outcome) -> _Prepared | None:
        """Fetch, clean and chunk; handle removals and unchanged documents. None means: nothing left to do."""
        if event in REMOVE_EVENTS:
            self._remove(ref, f"{event} event", started, outcome)
            return None
        try:
            with stage("fetch", outcome.timings):
                doc = self.source(ref.site).fetch(ref.source_id)
        except NotPublic as exc:
            self._remove(ref, exc.reason, started, outcome)
            return None
        size = len(doc.html.encode("utf-8", "replace"))
        if size > self.settings.max_document_bytes:
            raise PermanentError(f"document is {size} bytes, over the {self.settings.max_document_bytes}-byte cap "
                                 "(CMSRAG_MAX_DOCUMENT_BYTES); the indexed version, if any, is kept", stage="fetch")
        with stage("clean", outcome.timings):
            sections = clean(doc.html, doc.title)
        with stage("chunk", outcome.timings):
            chunks = chunk(doc.title, sections, max_tokens=self.settings.chunk_tokens,
                           overlap=self.settings.chunk_overlap, count_model_tokens=self.embedder.count_tokens,
                           model_max_tokens=self.embedder.max_input_tokens)
        checksum = self.checksum(doc, chunks)
        with stage("store"), self.db.connection() as conn:
            state = store.current_state(conn, ref.site, ref.source_id)
        if store.is_stale(state, fetched_at=started, modified_at=doc.modified_at):
            outcome.action = "stale"
            return None
        if state and state.checksum == checksum and state.status in ("indexed", "empty"):
            # Probably unchanged: record the observation (later-fetch-wins bookkeeping) and embed nothing.
            with stage("store"), self.db.connection() as conn:
                result = store.touch(conn, ref.site, ref.source_id, checksum=checksum, fetched_at=started,
                                     modified_at=doc.modified_at)
            if result != "changed":
                outcome.action, outcome.chunks = result, len(chunks)
                return None
        return _Prepared(ref, started, doc, chunks, checksum)

    def _store(self, prepared: _Prepared, outcome: Outcome) -> None:
        with stage("store", outcome.timings), self.db.connection() as conn:
            outcome.action = store.upsert_document(conn, prepared.doc, prepared.chunks, checksum=prepared.checksum,
                                                   model_id=self.embedder.model_id, fetched_at=prepared.started)
        outcome.chunks = len(prepared.chunks)

    def _remove(self, ref: DocRef, reason: str, started: datetime, outcome: Outcome) -> None:
        with stage("store"), self.db.connection() as conn:
            outcome.action = store.remove_document(conn, ref.site, ref.source_id, reason=reason, fetched_at=started)

    def checksum(self, doc: SourceDocument, chunks: list[Chunk]) -> str:
        """Everything that, if changed, changes the index: content, metadata, chunking settings and model."""
        payload = [doc.url, doc.title, doc.doc_type, doc.language, doc.audience, self.embedder.model_id,
                   self.settings.chunk_tokens, self.settings.chunk_overlap,
                   [(c.content_hash, c.anchor, c.heading_path) for c in chunks]]
        return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()

    def _log(self, o: Outcome) -> None:
        with self._totals_lock:
            self.totals.update(o.timings)
            self.totals[f"documents_{o.action}"] += 1
        fields = {"site": o.ref.site, "source_id": o.ref.source_id, "chunks": o.chunks,
                  "embedded": o.stats.embedded, "reused": o.stats.reused, "seconds": round(o.seconds, 3),
                  **{f"{k}_s": round(v, 3) for k, v in o.timings.items()}}
        if o.error is not None:
            log.warning("document_failed", stage=o.error.stage, error=str(o.error), **fields)
        else:
            log.info(f"document_{o.action}", **fields)
            metrics.document_done(o.ref.site, o.action, o.timings)
