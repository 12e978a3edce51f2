"""Who may read CSDS on the xDS port: the management API's readers, as a guard of the xDS server's methods.

CSDS shows every connected node's configuration, so it is read as the
management API's reads are (:func:`switchman.api.auth.authorize`): with
tokens configured, a read or admin token in the call's metadata
(``authorization: Bearer TOKEN``) or a client certificate whose identity
may read; without tokens, anyone who reaches the port. A refusal is the
management API's (UNAUTHENTICATED without a token, the same
``switchman-error-code`` trailer).
"""

from __future__ import annotations

from switchman.api.auth import Tokens, authorize
from switchman.api.errors import ApiError
from switchman.api.grpc.errors import grpc_error
from switchman.xds.server.methods import CallError, Code, Guard, Metadata
from switchman.xds.server.peer import Peer

__all__ = ["reader_guard"]


def reader_guard(tokens: Tokens) -> Guard:
    """A guard that lets in whoever may read (any caller without tokens); CallError for the rest."""

    def guard(metadata: Metadata, peer: Peer) -> None:
        authorization = next((v for k, v in metadata if k.lower() == "authorization"), "")
        try:
            authorize(tokens, authorization, "", change=False, names=peer.names, token_header="authorization")
        except ApiError as exc:
            error = grpc_error(exc)
            raise CallError(Code(error.status.value[0]), error.message, error.trailing_metadata) from None

    return guard
