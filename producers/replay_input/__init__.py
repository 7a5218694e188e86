"""What a replay file is, told from its first bytes, then read as a stream, in flat memory.

Shapes (:func:`~producers.replay_input.shape.read_input`):

- **Lambda event** ``{"Records": [...]}`` and **JSON list** ``[...]``: one JSON
  document, parsed incrementally with ijson (yajl's C parser): each record is
  built and handed on as soon as it has been read, so memory holds one read
  buffer and the records of one chunk whatever the file's size
  (``benchmarks/replay_memory.py``, BENCHMARKS.md). A document that stops early
  is reported with the records read before: **cut short** (the input ends inside
  it) or **broken** (not JSON from some point on).
- **NDJSON**: a first line that is a whole JSON object (not an event); read line
  by line, and a line that is not JSON is one malformed record (its line number
  is reported and it is quarantined), as a damaged line of a dump is.
- **JSON record**, or any JSON object whose first key is not ``"Records"``:
  read whole (one stream record is at most a few hundred KB).
- **unreadable**: neither. Its first non-blank byte is not ``{`` or ``[``, or
  the parser rejects it before one record has been read without the input
  having ended. Nothing of it is a record: the command refuses it (exit 2)
  rather than quarantine each of its lines, unless asked to keep it
  (``--quarantine-unreadable``: its first
  :data:`~producers.replay_input.model.UNREADABLE_HEAD_BYTES`, one message).

Modules: :mod:`~producers.replay_input.model` (what reading yields),
:mod:`~producers.replay_input.sniffer` (the first bytes, buffered),
:mod:`~producers.replay_input.readers` (the streaming readers of each shape),
:mod:`~producers.replay_input.shape` (which shape, from the first bytes).

Why ijson rather than a parser of our own: the C backend streams from a file
object and builds records as fast as ``json.loads`` builds whole documents
(BENCHMARKS.md, "Replay memory"), and keeps numbers exact (``Decimal``, as the
decoder does); a hand-written incremental parser would be pure Python, slower
than the C backend, and one more thing to get right. It is a small wheel in the base
install (``chromasync replay`` is part of the producer).
"""
