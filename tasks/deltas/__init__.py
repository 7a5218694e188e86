"""Merging a compaction run's delta (new embeddings in S3) into its Chroma collection.

An upstream embedding job writes the new embeddings of a receipt into a small
Chroma ``PersistentClient`` directory, puts it in S3 and then INSERTs a
COMPACTION_RUN item whose ``lines_delta_prefix`` / ``words_delta_prefix`` say
where. The worker, holding the collection's lease, calls
:class:`~tasks.deltas.merger.S3DeltaMerger` (a :data:`tasks.writer.DeltaMerger`)
for that change. One module per job:

* :mod:`~tasks.deltas.location`: where a delta lies (a prefix or a tarball);
* :mod:`~tasks.deltas.fetch`: downloading it from S3;
* :mod:`~tasks.deltas.extract`: safe extraction and finding its Chroma directory;
* :mod:`~tasks.deltas.merge`: upserting it into the collection and checking it arrived;
* :mod:`~tasks.deltas.runs`: reading the run item and marking it done per collection;
* :mod:`~tasks.deltas.merger`: the merger that composes them;
* :mod:`~tasks.deltas.errors`: the permanent failures.
"""
