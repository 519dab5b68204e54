"""The embedding workers: dramatiq actors and the pipeline stages they run (fetch, clean, chunk, embed, store)."""
