"""The running parts of cmsrag: the webhook receiver, the embedding workers, the query API and the CLI."""
