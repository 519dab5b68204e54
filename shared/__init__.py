"""Code every cmsrag service shares: settings, errors, models, database, sources and embedders.

Nothing here imports `services`; the services import from here.
"""
