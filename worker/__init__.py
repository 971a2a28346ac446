"""The worker side of vitalq: Celery app, job store, storage, progress bus and settings.

Nothing here imports the web tier.
"""
