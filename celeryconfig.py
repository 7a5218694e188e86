"""All Celery settings, read from environment variables with local defaults.

``celery -A tasks`` reads the module-level names below, computed from the
environment at import. They come from :func:`chromasync.core.celery_settings.celery_settings`,
which the producer and the tests call to read the environment as it is then.
See the README for every variable.
"""

from chromasync.core.celery_settings import celery_settings

globals().update(celery_settings())
