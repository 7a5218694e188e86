"""One module per ``chromasync`` subcommand; each has ``register(subparsers)``.

:data:`COMMANDS` lists them in the order ``--help`` shows them.
"""

COMMANDS = (
    "run",
    "provision",
    "poll",
    "replay",
    "status",
    "verify",
    "dlq",
    "snapshot",
    "exporter",
    "flower",
    "bench",
)
