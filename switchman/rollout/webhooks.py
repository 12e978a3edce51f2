"""Calling a Rollout's webhooks: an HTTP POST each, bounded by its timeout; 2xx is yes.

The body is JSON in the shape Flagger sends (``name``, ``namespace``,
``phase``, ``metadata``), with Switchman's additions (``service``,
``stable``, ``canary``, ``weight``, ``type``), so gates written for Flagger work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from switchman.model.kinds.rollout import RolloutSpec, Webhook

__all__ = ["WebhookCaller", "WebhookOutcome"]

log = logging.getLogger(__name__)
_MAX_BODY = 4096  # what is kept of an answer, for the event that quotes it


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    name: str
    ok: bool
    detail: str  # the status and the start of the answer, or why there was none


class WebhookCaller:
    """One HTTP session for every webhook call of an engine."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def call(self, hook: Webhook, payload: dict[str, Any]) -> WebhookOutcome:
        body = {**payload, "type": hook.type, "metadata": dict(hook.metadata)}
        try:
            async with asyncio.timeout(hook.timeout):
                async with self._client().post(hook.url, json=body, allow_redirects=False) as response:
                    text = (await response.content.read(_MAX_BODY)).decode("utf-8", "replace").strip()
                    ok = 200 <= response.status < 300
                    detail = f"{hook.name}: HTTP {response.status}" + (f" {text[:200]}" if text else "")
                    return WebhookOutcome(hook.name, ok, detail)
        except TimeoutError:
            return WebhookOutcome(hook.name, False, f"{hook.name}: no answer within {hook.timeout:g}s")
        except aiohttp.ClientError as exc:
            return WebhookOutcome(hook.name, False, f"{hook.name}: {type(exc).__name__}: {exc}")

    async def call_all(self, hooks: Sequence[Webhook], payload: dict[str, Any]) -> list[WebhookOutcome]:
        """Every hook, at the same time; in the order given."""
        return list(await asyncio.gather(*(self.call(h, payload) for h in hooks)))


def payload(name: str, spec: RolloutSpec, phase: str, weight: int) -> dict[str, Any]:
    """The JSON every webhook of rollout ``name`` gets."""
    return {
        "name": name, "namespace": "switchman", "phase": phase, "service": spec.service,
        "stable": spec.stable, "canary": spec.canary, "weight": weight,
    }
