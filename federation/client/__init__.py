"""``barri client``: a small ActivityPub C2S client, and the reference for client developers.

:mod:`.oauth` logs in (RFC 8414 discovery, PKCE S256, loopback redirect, Client ID Metadata
Documents), :mod:`.api` makes the C2S calls with the bearer token (and builds client-signed
supports), :mod:`.credentials` keeps the tokens, :mod:`.cli` is the command line.
"""

from federation.client.cli import add_client_commands

__all__ = ["add_client_commands"]
