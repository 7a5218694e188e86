"""The FIFO message group of a change: its receipt.

The producer sets it on every message it sends to a FIFO queue and a worker on
every retry it sends back, so both must compute it the same way: changes of one
receipt stay in order, different receipts do not wait for each other.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

#: What an SQS FIFO MessageGroupId may hold (at most 128 of these).
_GROUP_ID_CHARS: Final = re.compile(r"[A-Za-z0-9!-/:-@\[-`{-~]{1,128}")


def receipt_group(image_id: str, receipt_id: int) -> str:
    """The message group of one receipt's changes.

    An image id with characters SQS does not allow in a group id (or a very
    long one) is replaced by a digest, so the group stays one per receipt.
    """
    group = f"{image_id}#{receipt_id:05d}"
    if _GROUP_ID_CHARS.fullmatch(group):
        return group
    return "sha256-" + hashlib.sha256(group.encode()).hexdigest()
