"""Where a rollout run stands: what the engine stores after every move, and reads back on any replica.

Kept in the store's runtime state (``rollouts/NAME``), not in revisions:
revisions are what people and rollouts change; this is bookkeeping.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

__all__ = ["ENDED", "MAX_ANALYSES", "MAX_EVENTS", "Event", "Phase", "RolloutState", "generation_of", "state_key"]

MAX_EVENTS: Final = 200
MAX_ANALYSES: Final = 60  # the newest analyses of a run, each with its window and numbers


class Phase(StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ABORTED = "Aborted"


ENDED: Final = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.ABORTED})


def state_key(name: str) -> str:
    return f"rollouts/{name}"


def generation_of(spec: Mapping[str, Any]) -> str:
    """A digest of a Rollout's spec: a new one starts a new run."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a run, with the numbers behind it."""

    at: float
    kind: str  # Started, Advanced, Halted, Inconclusive, Paused, Resumed, Promoted, RolledBack, Aborted, ...
    message: str
    stage: int
    weight: int
    values: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at, "kind": self.kind, "message": self.message, "stage": self.stage,
            "weight": self.weight, "values": dict(self.values),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            float(data["at"]), str(data["kind"]), str(data["message"]), int(data["stage"]), int(data["weight"]),
            dict(data.get("values") or {}),
        )


@dataclass(frozen=True, slots=True)
class RolloutState:
    """One run of one Rollout. ``pending`` is the work queued before the stage machine goes on:
    ``hooks:TYPE`` (run those webhooks), ``enter:N`` (set stage N's traffic), ``rollback``."""

    generation: str
    run: int
    phase: Phase
    stage: int  # -1 before the first stage is entered
    started_at: float
    stage_started_at: float
    last_analysis_at: float
    weight: int = 0  # the canary's share as last set
    passed: int = 0  # passing analyses in this stage
    failed: int = 0  # failed checks in this run
    pending: tuple[str, ...] = ()
    retry_at: float = 0.0  # when a failed webhook gate is tried again
    enter_at: float = 0.0  # the next stage is not entered before this (the due moment of the analysis that let it)
    paused_by: str | None = None  # "step" (a pause step), or who paused it
    promote: str | None = None  # "step" or "full": what a promote asked for, not yet done
    aborting: str | None = None  # who aborted it, while traffic goes back
    finished_at: float | None = None
    message: str = ""
    last_verdict: Mapping[str, Any] | None = None
    revision: int | None = None  # the last revision this run committed
    events: tuple[Event, ...] = ()
    analyses: tuple[Mapping[str, Any], ...] = ()  # {"at", "start", "end", "outcome", "measurement"}, newest last

    def with_event(self, event: Event) -> RolloutState:
        return replace(self, events=(*self.events, event)[-MAX_EVENTS:], message=event.message)

    def to_json(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: that deep-copies every event and analysis, every turn.
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["phase"] = self.phase.value
        data["pending"] = list(self.pending)
        data["events"] = [e.to_json() for e in self.events]
        data["last_verdict"] = dict(self.last_verdict) if self.last_verdict is not None else None
        data["analyses"] = [dict(a) for a in self.analyses]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RolloutState:
        fields = dict(data)
        fields["phase"] = Phase(fields["phase"])
        fields["pending"] = tuple(fields.get("pending") or ())
        fields["events"] = tuple(Event.from_json(e) for e in fields.get("events") or ())
        fields["analyses"] = tuple(dict(a) for a in fields.get("analyses") or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in fields.items() if k in known})
