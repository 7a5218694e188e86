"""Command line and local runtime of chromasync (``chromasync run|poll|replay|dlq``)."""
