"""Exit statuses every process shares: the CLI's commands and a worker refused at start.

An operator's scripts (and ``chromasync run``, which supervises workers) tell a
wrong setting from a missing service by these, whichever process exited.
"""

from __future__ import annotations

import signal

#: Bad configuration or usage: fix a setting or an option.
EXIT_CONFIG = 2
#: A service (SQS, DynamoDB, S3, Redis, Chroma) is missing, denied or unreachable.
EXIT_UNAVAILABLE = 3
#: The reader of the output went away (``chromasync dlq show X | head``): 128 + SIGPIPE,
#: what a shell reports for a command that SIGPIPE ended (``yes | head``), so
#: ``set -o pipefail`` treats it as such tools, and a cut-short command never says 0.
EXIT_OUTPUT_CLOSED = 128 + signal.SIGPIPE
