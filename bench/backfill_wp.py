"""Backfill benchmark on a real WordPress: N posts created in the CMS, then `cmsrag backfill` until fully indexed.

Real parts throughout: WordPress 6.1 (Debian) + MariaDB behind `php -S`, its REST API paged 100 at a time,
RabbitMQ, a worker with the local model, pgvector. Prints the time to list, to fully indexed, and the rate,
beside the raw embedder on the same chunks in the same run (the ceiling).

    python -m bench.backfill_wp [--posts 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import chunk_corpus, drop_database, fresh_database, machine, rabbitmq_url
from services.cli.app import App
from services.cli.indexing import in_process_worker, list_site, wait_until_done
from shared import logs
from shared.settings import Settings
from shared.sites import SiteConfig
from tests.cms.wordpress import WordPressServer

TOPICS = ["kettles", "teapots", "descaling", "infusers", "water hardness", "tea leaves", "brewing time", "cups"]


def create_posts(wp: WordPressServer, n: int) -> None:
    """n published posts of a few paragraphs each, inserted the way an import plugin would (PHP, in one go)."""
    wp.php(f"""
        wp_defer_term_counting(true);
        $topics = {list(TOPICS)!r};
        for ($i = 0; $i < {n}; $i++) {{
            $t = $topics[$i % count($topics)];
            $paras = '';
            for ($p = 0; $p < 4; $p++) {{
                $paras .= "<!-- wp:paragraph --><p>Note $i.$p about $t: how to look after $t at home, what goes "
                    . "wrong with $t over time, and the small habits that keep $t working for years.</p>"
                    . "<!-- /wp:paragraph -->";
            }}
            wp_insert_post(['post_title' => "Note $i on $t", 'post_status' => 'publish',
                            'post_content' => "<h2 id=\\"care\\">Care</h2>" . $paras]);
        }}
    """)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--posts", type=int, default=1000)
    args = p.parse_args()
    logs.configure("WARNING")
    rabbit = rabbitmq_url()
    wp = WordPressServer(Path(tempfile.mkdtemp(prefix="cmsrag-wp-bench-"))).start()
    url = fresh_database("wpbackfill")
    try:
        t0 = time.perf_counter()
        create_posts(wp, args.posts)
        created = time.perf_counter() - t0
        site = SiteConfig(name="blog", kind="wordpress", url=wp.base_url, post_types=("posts",))
        settings = dataclasses.replace(Settings(sites=(site,)), database_url=url, rabbitmq_url=rabbit,
                                       queue_prefix=f"wpb{uuid.uuid4().hex[:6]}", log_level="WARNING")
        app = App(settings)
        try:
            app.migrate()
            t1 = time.perf_counter()
            listed = list_site(app, "blog", quiet=True)
            listing = time.perf_counter() - t1
            ids = [d.source_id for d in listed]
            with in_process_worker(app):
                sum(app.queue.request_many("blog", ids))
                assert wait_until_done(app, "blog", progress=False, timeout=3600)
            total = time.perf_counter() - t1
            with app.db.connection() as conn:
                docs, chunks = conn.execute("SELECT count(*), sum(chunk_count) FROM documents "
                                            "WHERE status = 'indexed'").fetchone() or (0, 0)
            sample = chunk_corpus(settings, site, ids[:100], app.embedder).texts
            t2 = time.perf_counter()
            app.embedder.embed(sample)
            raw = len(sample) / (time.perf_counter() - t2)
        finally:
            app.close()
        print(f"# WordPress backfill — {machine()} — {time.strftime('%Y-%m-%d %H:%M')}")
        print(f"{args.posts} posts created in WordPress in {created:.1f}s; listed through the REST API in "
              f"{listing:.1f}s ({len(ids)} ids)")
        print(f"fully indexed after {total:.1f}s: {docs} documents, {chunks} chunks — {docs / total:.1f} docs/s, "
              f"{chunks / total:.1f} chunks/s (queue {'RabbitMQ' if rabbit else 'in-memory'}, local model)")
        print(f"raw embedder on the first 100 posts' chunks: {raw:.1f} chunks/s → end to end at "
              f"{100 * chunks / total / raw:.0f} % of it")
    finally:
        drop_database(url)
        wp.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
