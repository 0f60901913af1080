"""The city aggregator (DESIGN.md §7): follows every roster instance, verifies, merges, counts.

``config`` reads its ``barri.toml``; ``app.create_app`` serves the ``Service`` actor, discovery,
the shared inbox and the JSON API; ``roster`` follows and unfollows instances; ``ingest`` turns
verified activities into stored rows; ``state`` feeds those rows to the incremental tally;
``backfill`` walks instances' outboxes; ``cli`` adds ``barri init aggregator``, ``barri roster``
and ``barri tally``.
"""
