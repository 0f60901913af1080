"""The neighbourhood instance: residents, their actors and discovery; ``app.create_app`` serves it.

Modules: ``ports`` (storage Protocols and records), ``accounts`` (account rules), ``actors``
(local actors and keys), ``discovery`` (WebFinger, NodeInfo), ``wiring`` (one database, wired),
``app`` (the aiohttp application).
"""
