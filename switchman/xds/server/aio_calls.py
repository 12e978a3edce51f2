"""What the grpc.aio servicers on the xDS port read of a call: its client, its metadata, and its guard.

The h2 transport hands the same to its methods itself (:mod:`switchman.xds.h2.connection`); these are the
grpc.aio side, so that both transports decide alike.
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from grpc import aio

from switchman.xds.server.methods import CallError, Guard, Metadata
from switchman.xds.server.peer import Peer, peer_of_auth_context

__all__ = ["abort", "call_metadata", "call_peer", "check_guard", "status_code"]


def call_peer(context: aio.ServicerContext[Any, Any]) -> Peer:
    """The call's client: its verified certificate's identity (anonymous without one)."""
    return peer_of_auth_context(context.auth_context())


def call_metadata(context: aio.ServicerContext[Any, Any]) -> Metadata:
    """The call's text metadata, keys in lower case (binary values left out)."""
    return tuple((str(k).lower(), v) for k, v in (context.invocation_metadata() or ()) if isinstance(v, str))


def status_code(error: CallError) -> grpc.StatusCode:
    return next(code for code in grpc.StatusCode if code.value[0] == int(error.code))


async def abort(context: aio.ServicerContext[Any, Any], error: CallError) -> NoReturn:
    """End the call with ``error``'s status, message and trailers."""
    await context.abort(status_code(error), error.message, trailing_metadata=error.trailers)
    raise AssertionError("ServicerContext.abort returned")  # it raises; this is for the type checker


async def check_guard(guard: Guard | None, context: aio.ServicerContext[Any, Any]) -> None:
    """Run ``guard`` on the call; end it with the guard's refusal."""
    if guard is None:
        return
    try:
        guard(call_metadata(context), call_peer(context))
    except CallError as exc:
        await abort(context, exc)
