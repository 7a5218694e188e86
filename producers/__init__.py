"""Producer side of chromasync: stream records become Celery tasks on per-collection queues.

Imports neither chromadb nor the worker code, so it deploys as a small Lambda zip.
"""
