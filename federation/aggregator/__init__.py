"""The city aggregator (DESIGN.md §7): follows every roster instance, verifies, merges, counts.

``config`` reads its ``barri.toml``; ``app.create_app`` serves the ``Service`` actor, discovery,
the shared inbox, the JSON API (``api``), the exports (``exports``), the results pages
(``pages``, templates in ``templates/``) and ``/metrics`` (``metrics``); ``roster`` follows and
unfollows instances; ``ingest`` turns verified activities into stored rows (``merge`` for
debates, comments and deletions, ``followers`` for who follows the Service); ``state`` feeds
those rows to the incremental tally; ``publish`` publishes the signed Tallies; ``views`` is one
process's result as every reader shows it (live, or final once closed); ``backfill`` walks
instances' collections; ``recompute`` recounts from the stored documents; ``cli`` adds
``barri init aggregator``, ``barri roster`` and ``barri tally``.
"""
