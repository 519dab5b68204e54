"""The webhook receiver and the bulk paths (backfill, reconcile) that put document ids on the queue."""
