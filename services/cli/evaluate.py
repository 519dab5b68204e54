"""`cmsrag eval`: retrieval and answer quality on a question set, per search mode and per kind of question.

The index evaluated is either a configured site as it stands (`--site`: nothing is indexed, so the figures are
those of what visitors search), or a folder of HTML files (`--corpus`) indexed here through the real pipeline
under a site name derived from the folder. A corpus index is reused: only files new or modified since they were
indexed are embedded (batched across documents, which the local model does several times faster), and files
gone from the folder or from the `--include` selection are removed, so the index always equals the selection.
Retrieval metrics read the ranked pages without the relevance floor (rank quality is what they measure);
answers go through the same `Asker` as the API, with the answer cache off so every answer is produced afresh.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from services.api import evaluate as ev
from services.api.answer import Asker, AskRequest
from services.api.cache import AnswerCache
from services.api.filters import Filters
from services.api.llm import ExtractiveModel, LanguageModel, make_language_model
from services.api.search import search
from services.cli.app import App
from shared.errors import CmsragError, ConfigError
from shared.models import DocRef
from shared.sites import SiteConfig

MODES = ("fulltext", "vector", "hybrid")
BATCH_DOCUMENTS = 16
COLUMN = 16  # table column width: "conceptual (12)" fits
PASSAGES_PER_PAGE = 5  # passages fetched per page wanted: pages repeat, and k distinct pages must remain


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `eval` options, wired by `build_parser()`."""
    p.add_argument("--questions", required=True, type=Path, metavar="FILE",
                   help="JSON lines: id, question, relevant, answer, must_contain, kind")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--site", help="evaluate this configured site's index as it stands")
    where.add_argument("--corpus", type=Path, metavar="DIR", help="index this folder of HTML files (or reuse it)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="with --corpus: only files matching (e.g. 'library/*'; repeat)")
    p.add_argument("--retrieval", choices=[*MODES, "all"], default="hybrid")
    p.add_argument("--answer", choices=["none", "extractive", "llm"], default="none")
    p.add_argument("--k", type=_positive, default=10, help="pages per question the metrics read (default 10)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write every figure and per-question detail here")


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a whole number of at least 1")
    return int(value)


def cmd_eval(app: App, args: argparse.Namespace) -> int:
    if args.include and not args.corpus:
        print("cmsrag eval: --include only applies to --corpus", file=sys.stderr)
        return 2
    try:
        questions = ev.parse_questions(args.questions.read_text(encoding="utf-8").splitlines(), str(args.questions))
    except (OSError, UnicodeDecodeError) as exc:
        raise CmsragError(f"cannot read the questions: {exc}") from None
    model = answer_model(app, args.answer)
    report: dict[str, Any] = {}
    if args.corpus:
        site = corpus_site(args.corpus)
        app.settings = replace(app.settings, sites=(*[s for s in app.settings.sites if s.name != site.name], site))
        report["index"] = index_corpus(app, site, tuple(args.include))
        name = site.name
    else:
        name = app.settings.site(args.site).name
    app.check_index()
    page_of = page_urls(app, name)
    if not page_of:
        raise CmsragError(f"site {name!r} has nothing indexed: run `cmsrag backfill {name}` first")
    missing = sorted({p for q in questions for p in q.relevant} - set(page_of.values()))
    if missing:
        print(f"warning: {len(missing)} relevant page(s) not in the index: {', '.join(missing[:10])}", file=sys.stderr)
    modes = MODES if args.retrieval == "all" else (args.retrieval,)
    ranked = rank_pages(app, name, questions, modes, args.k)
    answers = ask_all(app, name, questions, model, page_of) if model else None
    report |= ev.report(questions, ranked, answers, args.k)
    print_report(report, args.k, model)
    if args.json:
        try:
            args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        except OSError as exc:
            raise CmsragError(f"cannot write {args.json}: {exc}") from None
    return 0


def answer_model(app: App, choice: str) -> LanguageModel | None:
    if choice == "none":
        return None
    if choice == "extractive":
        return ExtractiveModel()
    model = make_language_model(app.settings.query)
    if model.provider == "extractive":
        raise ConfigError(["--answer llm: no language model is configured; configure CMSRAG_LLM (and its key)"])
    return model


def corpus_site(folder: Path) -> SiteConfig:
    """A `files` site for the folder, named from its resolved path so the same folder finds its index again."""
    root = folder.resolve()
    if not root.is_dir():
        raise CmsragError(f"--corpus {folder}: not a folder")
    name = f"corpus-{hashlib.sha1(str(root).encode()).hexdigest()[:8]}"
    return SiteConfig(name=name, kind="files", path=root, url=root.as_uri() + "/")


def index_corpus(app: App, site: SiteConfig, include: tuple[str, ...]) -> dict[str, Any]:
    """Bring the corpus index in step with the folder; only new and modified files are embedded."""
    from services.embedder.pipeline import Pipeline
    from services.ingest.reconcile import indexed_documents, plan
    from shared.sources import make_source

    app.migrate()  # a fresh database gets the schema; an index of another model is refused, not mixed
    listed = list(make_source(site, app.settings).list_documents(types=include or None))
    if not listed:
        raise CmsragError(f"{site.path}: no HTML files" + (f" match {', '.join(include)}" if include else ""))
    with app.db.connection() as conn:
        todo = plan(listed, indexed_documents(conn, site.name))
    pipeline, ids, failed, embedded = Pipeline(app.settings, app.db, app.embedder), todo.new + todo.changed, [], 0
    for source_id in todo.gone:
        pipeline.sync(DocRef(site.name, source_id), "delete")
    with tqdm(total=len(ids), desc=f"indexing {site.name}", unit="doc", disable=not ids) as bar:
        for i in range(0, len(ids), BATCH_DOCUMENTS):
            outcomes = pipeline.sync_batch(site.name, ids[i:i + BATCH_DOCUMENTS])
            failed += [f"{o.ref.source_id}: {o.error}" for o in outcomes if o.action == "failed"]
            embedded += sum(o.stats.embedded for o in outcomes)
            bar.update(len(outcomes))
    for line in failed:
        print(f"warning: not indexed: {line}", file=sys.stderr)
    info = {"site": site.name, "path": str(site.path), "include": list(include), "files": todo.listed,
            "indexed": len(ids) - len(failed), "reused": todo.unchanged, "removed": len(todo.gone),
            "failed": len(failed), "chunks_embedded": embedded}
    print(f"index {site.name} ({site.path}): {info['indexed']} new/changed, {info['reused']} reused, "
          f"{info['removed']} removed, {info['failed']} failed; {embedded} chunks embedded")
    return info


def page_urls(app: App, site: str) -> dict[str, str]:
    """Page URL → source id for the site's indexed pages, to map a citation (`url#section`) to its page."""
    with app.db.connection() as conn:
        rows = conn.execute("SELECT url, source_id FROM documents WHERE site = %s AND status = 'indexed'",
                            (site,)).fetchall()
    return {r[0] or "": r[1] for r in rows}


def rank_pages(app: App, site: str, questions: list[ev.Question], modes: tuple[str, ...],
               k: int) -> dict[str, list[list[str]]]:
    """The first `k` pages per mode and question. Each question is embedded once, for every mode."""
    vectors = app.embedder.embed([q.question for q in questions])
    vtype, filters = app.check_index(), Filters(sites=(site,))
    out: dict[str, list[list[str]]] = {}
    with app.db.connection() as conn:
        for mode in modes:
            out[mode] = [ev.unique_pages(h.source_id for h in search(
                conn, v, q.question, k=k * PASSAGES_PER_PAGE, filters=filters, mode=mode, vector_type=vtype,
                min_similarity=None))[:k] for q, v in zip(questions, vectors, strict=True)]
    return out


def ask_all(app: App, site: str, questions: list[ev.Question], model: LanguageModel,
            page_of: dict[str, str]) -> list[tuple[ev.AnswerResult, list[str]]]:
    """Each question asked as the API would answer it; the cited URLs are kept for the report."""
    asker = Asker(app.settings, app.db, app.embedder, model, AnswerCache(app.db, 0), vector_type=app.check_index())
    results = []
    for q in tqdm(questions, desc="answering", unit="question"):
        t0, sources, done = time.perf_counter(), [], {}
        for event, data in asker.events(AskRequest(q.question, Filters(sites=(site,)))):
            if event == "sources":
                sources = data["citations"]
            elif event == "done":
                done = data
        latency = (time.perf_counter() - t0) * 1000
        urls = [c["url"] for c in done["citations"]]
        results.append((ev.AnswerResult(
            q.kind, done["answer"], bool(done["refused"]), tuple(page_of.get(u.split("#")[0]) for u in urls),
            frozenset(page_of.get(c["url"].split("#")[0], "") for c in sources), frozenset(q.relevant),
            q.must_contain, latency), urls))
    return results


def _row(label: str, values: list[float | None], digits: int = 3) -> str:
    return f"{label:<20}" + "".join(f"{'–' if v is None else f'{v:.{digits}f}':>{COLUMN}}" for v in values)


def print_report(report: dict[str, Any], k: int, model: LanguageModel | None) -> None:
    counts = report["counts"]["by_kind"]
    kinds = [kind for kind in ev.KINDS if kind != "negative" and counts[kind]]
    n = sum(counts[kind] for kind in kinds)
    print(f"\nretrieval: first {k} pages; {n} questions ({counts['negative']} negatives left out)")
    print(f"{'mode / metric':<20}" + "".join(f"{f'{c} ({counts.get(c, n)})':>{COLUMN}}" for c in ["all", *kinds]))
    for mode, figures in report["retrieval"].items():
        for metric in ev.metric_names(k):
            print(_row(f"{mode} {metric}", [figures["all"].get(metric)]
                       + [figures["by_kind"].get(kind, {}).get(metric) for kind in kinds]))
    mode = "hybrid" if "hybrid" in report["retrieval"] else next(iter(report["retrieval"]))
    misses = [q for q in report["questions"]
              if q["kind"] != "negative" and (q["retrieval"][mode]["first_relevant_rank"] or k + 1) > 5]
    print(f"\n{mode} misses at 5 ({len(misses)}):")
    for q in misses:
        found = q["retrieval"][mode]
        print(f"  {q['id']} {q['kind']}: relevant at {found['first_relevant_rank'] or f'>{k}'}; top: "
              f"{', '.join(found['pages'][:3])} — {q['question']}")
    if report["answers"] is not None and model is not None:
        print_answers(report, model)


def print_answers(report: dict[str, Any], model: LanguageModel) -> None:
    a, counts = report["answers"], report["counts"]["by_kind"]
    kinds = [kind for kind in ev.KINDS if counts[kind]]
    print(f"\nanswers ({model.provider}:{model.model})")
    print(f"{'metric':<20}" + "".join(f"{f'{c} ({counts.get(c, sum(counts.values()))})':>{COLUMN}}"
                                      for c in ["all", *kinds]))
    for metric in ("correct", "refusal", "false_refusal", "citation_precision"):
        print(_row(metric, [a[metric]] + [a["by_kind"][kind][metric] for kind in kinds]))
    for p in ("p50", "p95"):
        print(_row(f"latency_ms {p}", [a["latency_ms"][p]] + [a["by_kind"][k]["latency_ms"][p] for k in kinds], 1))
    wrong = [q for q in report["questions"] if not q["correct"]]
    print(f"\nwrong answers ({len(wrong)}):")
    for q in wrong:
        missing = [t for t in q["must_contain"] if t not in q["answer"].lower()]
        why = ("refused" if q["refused"] else "answered a negative" if q["kind"] == "negative"
               else f"missing {', '.join(missing)}")
        print(f"  {q['id']} {q['kind']}: {why}; cited {', '.join(c['page'] or c['url'] for c in q['cited']) or '-'}"
              f" — {q['question']}")
