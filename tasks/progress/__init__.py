"""The last applied batch of each collection, for ``chromasync status`` and the exporter.

After each batch that applied at least one change the worker records the
batch id, when, under which fence, how many changes, the highest stream
sequence number among them and the end-to-end lag of the newest change.

Where: in the *lock store* (``CHROMASYNC_LOCK_URL``), next to the lock it
describes — a Redis hash, an item of the DynamoDB lock table, or this
process's memory for ``memory://NAME`` (tests). The lock store is what every
worker already needs and the operator already keeps durable, while the
metrics Redis is optional and best effort; one place per collection means
``status`` needs no other service to say what was applied last.

:mod:`tasks.progress.backend` is the interface every store implements,
:mod:`tasks.progress.backends` holds one module per store,
:mod:`tasks.progress.factory` picks one from the URL and
:mod:`tasks.progress.recording` is the worker's hook.
"""
