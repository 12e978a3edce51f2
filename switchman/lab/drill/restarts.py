"""The control plane restarted during a drill: the kills, what the drill saw meanwhile, and what must hold.

A ``controlPlane`` action (:class:`~switchman.lab.drill.scenario.RestartSpec`)
runs in the background while the drill keeps watching the rollout: SIGKILL
the replica, watch every live replica's status until each of the lab's
Envoys is connected and runs the head revision again, start the replica
again (on the same store and ports), read the rollout once it serves. One
replica is down at a time: a second action waits for the first to end (a
rolling restart). The drill's API client is moved to a replica that is up.

Judged (:func:`judge_restarts`): after every kill the same run went on from
the stage it was at; when the rollout's driver was killed, another process
took it over; every Envoy ends on the head revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from switchman.client import SwitchmanClient
from switchman.lab.drill.judge import Check, Verdict
from switchman.lab.drill.scenario import RestartSpec
from switchman.lab.local.control_plane import ControlPlane, Restart

__all__ = ["ControlPlaneRecord", "RestartRecord", "Restarts", "judge_restarts"]

_POLL: Final = 0.05  # seconds between looks at the replicas' status while Envoys reconnect
_BACK_WITHIN: Final = 60.0  # seconds after a kill by which every Envoy must be back
_HEAD_WITHIN: Final = 15.0  # seconds after the run for every Envoy to run the head revision


@dataclass(frozen=True, slots=True)
class RestartRecord:
    """One kill and restart, and the rollout as the drill read it on either side."""

    restart: Restart
    envoys_back_at: float | None  # every Envoy connected to a replica and on the head revision again
    before: Mapping[str, Any]  # the rollout's status just before the kill (``state``, ``driver``)
    after: Mapping[str, Any]  # its status read once the replica served again

    @property
    def was_driving(self) -> bool:
        return self.before.get("driver") == self.restart.killed


@dataclass(slots=True)
class ControlPlaneRecord:
    """What the control plane did during a drill: its replicas, the restarts, who drove the rollout when
    (each change of ``driver`` as the drill saw it), and which replica each Envoy ended on."""

    replicas: list[str]
    restarts: list[RestartRecord] = field(default_factory=list)
    drivers: list[tuple[float, str | None]] = field(default_factory=list)
    head: int = 0
    envoys: dict[str, str] = field(default_factory=dict)  # node -> the replica process it runs the head from
    lagging: dict[str, str] = field(default_factory=dict)  # node -> what it runs instead

    def driving(self, end: float) -> list[tuple[str, float, float]]:
        """``(process, from, until)`` for every stretch of time one process drove the rollout."""
        spans = []
        for i, (at, who) in enumerate(self.drivers):
            until = self.drivers[i + 1][0] if i + 1 < len(self.drivers) else end
            if who is not None and until > at:
                spans.append((who, at, until))
        return spans

    def gaps(self) -> list[tuple[float, float]]:
        """When the control plane saw less than all traffic: from a second before each kill (what the killed
        process had recorded but not yet shared dies with it) to a second after every Envoy was back (the
        front's access logs had no stream meanwhile)."""
        return [(r.restart.killed_at - 1.0, (r.envoys_back_at or r.restart.serving_at + _BACK_WITHIN) + 1.0)
                for r in self.restarts]


class Restarts:
    """The drill's ``controlPlane`` actions, each in the background, one replica down at a time."""

    def __init__(self, control_plane: ControlPlane, client: SwitchmanClient, rollout: str, nodes: set[str]) -> None:
        self.control_plane = control_plane
        self.client = client
        self.rollout = rollout
        self.nodes = nodes
        self.record = ControlPlaneRecord([r.name for r in control_plane.replicas])
        self._one_at_a_time = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._down: set[str] = set()

    @property
    def busy(self) -> bool:
        """A restart is under way (the API the drill reads may not answer)."""
        return any(not t.done() for t in self._tasks)

    def observe(self, status: Mapping[str, Any]) -> None:
        """The rollout's status as the drill polled it: note who drives it when that changes."""
        driver = status.get("driver")
        who = str(driver) if driver else None
        if not self.record.drivers or self.record.drivers[-1][1] != who:
            self.record.drivers.append((time.time(), who))

    def start(self, spec: RestartSpec) -> None:
        self._tasks.append(asyncio.create_task(self._restart(spec)))

    async def _restart(self, spec: RestartSpec) -> None:
        async with self._one_at_a_time:
            replica = self.control_plane.replica(spec.replica)
            before = await self.client.rollout(self.rollout)
            self.observe(before)
            killed = replica.process
            self._down.add(replica.name)
            others = [r for r in self.control_plane.replicas if r.name not in self._down]
            if others and self.client.base_url == replica.api_url:
                self.client.base_url = others[0].api_url  # the drill goes on reading a replica that is up
            killed_at, gone_at = await self.control_plane.kill(replica.name)
            back = asyncio.create_task(self._envoys_back())
            try:
                await asyncio.sleep(max(0.0, killed_at + spec.down_for - time.time()))
                started_at = await self.control_plane.revive(replica.name)
                serving_at = time.time()
                self._down.discard(replica.name)
                async with SwitchmanClient(replica.api_url, timeout=5.0) as api:
                    after = await api.rollout(self.rollout)
                back_at = await back
            finally:
                back.cancel()
            restart = Restart(replica.name, killed, replica.process, killed_at, gone_at, started_at, serving_at)
            self.record.restarts.append(RestartRecord(restart, back_at, before, after))

    async def _envoys_back(self) -> float | None:
        """When every Envoy of the lab was connected to a replica and ran the head revision again."""
        deadline = time.monotonic() + _BACK_WITHIN
        while time.monotonic() < deadline:
            _, on_head, _ = await self.control_plane.envoys(self._down)
            if self.nodes <= set(on_head):
                return time.time()
            await asyncio.sleep(_POLL)
        return None

    async def finish(self) -> ControlPlaneRecord:
        """Wait for the restarts under way; then where every Envoy ends (on the head revision, within a while)."""
        await asyncio.gather(*self._tasks)
        deadline = time.monotonic() + _HEAD_WITHIN
        while True:
            head, on_head, behind = await self.control_plane.envoys(self._down)
            if self.nodes <= set(on_head) or time.monotonic() > deadline:
                break
            await asyncio.sleep(_POLL)
        self.record.head = head
        self.record.envoys = on_head
        self.record.lagging = {**{n: "not connected" for n in self.nodes - set(on_head) - set(behind)}, **behind}
        return self.record

    async def cancel(self) -> None:
        """Stop the restarts under way (the drill ends early); the lab stops the processes."""
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _stage(status: Mapping[str, Any]) -> tuple[int, int]:
    state = status.get("state") or {}
    return int(state.get("run") or 0), int(state.get("stage", -1))


def judge_restarts(
    verdict: Verdict, record: ControlPlaneRecord, status: Mapping[str, Any], origin: float, end: float
) -> None:
    """The control plane's checks and figures, added to ``verdict`` (times in seconds since ``origin``)."""

    def check(name: str, passed: bool, detail: str) -> None:
        verdict.checks.append(Check(name, passed, detail))
        verdict.passed = verdict.passed and passed

    final = status.get("state") or {}
    events = list(final.get("events") or [])
    rows = []
    went_on = []
    takeovers = []
    for r in record.restarts:
        x = r.restart
        (run0, stage0), (run1, stage1) = _stage(r.before), _stage(r.after)
        kept = [e for e in (r.before.get("state") or {}).get("events") or []]
        went_on.append(run0 == run1 == int(final.get("run") or 0) and stage1 >= stage0 and events[:len(kept)] == kept)
        taker = next(((at, who) for at, who in record.drivers if at > x.killed_at and who not in (None, x.killed)),
                     None) if r.was_driving else None
        if r.was_driving:
            takeovers.append((x.killed, taker))
        rows.append({
            "replica": x.replica, "killed": x.killed, "startedAs": x.started,
            "killedAt_s": round(x.killed_at - origin, 3),
            "down_s": round(x.down_s, 3), "timeToReady_s": round(x.ready_s, 3),
            "envoysBack_s": round(r.envoys_back_at - x.killed_at, 3) if r.envoys_back_at is not None else None,
            "stageBefore": stage0 + 1, "stageAfter": stage1 + 1, "wasDriving": r.was_driving,
            "takenOverBy": taker[1] if taker else None,
            "takenOverAfter_s": round(taker[0] - x.killed_at, 3) if taker else None,
        })
    verdict.figures["controlPlane"] = {
        "replicas": record.replicas,
        "restarts": rows,
        "driving": [{"process": who, "from_s": round(a - origin, 3), "until_s": round(b - origin, 3)}
                    for who, a, b in record.driving(end)],
        "headRevision": record.head,
        "envoys": record.envoys,
    }
    if not record.restarts:
        return
    check("after every kill the same run went on from the stage it was at", all(went_on),
          "; ".join(f"{row['killed']}: stage {row['stageBefore']} before the kill, {row['stageAfter']} once it "
                    f"served again (run {_stage(r.after)[0]})" for row, r in zip(rows, record.restarts, strict=True)))
    check("the Envoys were all back after every kill", all(row["envoysBack_s"] is not None for row in rows),
          "; ".join(f"{row['killed']}: every Envoy on the head revision again {row['envoysBack_s']} s after the kill"
                    for row in rows))
    if takeovers:
        check("when the rollout's driver was killed, another process took it over",
              all(taker is not None for _, taker in takeovers),
              "; ".join(f"{killed} → {taker[1]} after {taker[0] - k.restart.killed_at:.2f} s" if taker
                        else f"{killed}: nobody took over"
                        for (killed, taker), k in zip(takeovers, [r for r in record.restarts if r.was_driving],
                                                      strict=True)))
    check("every Envoy ends on the head revision", not record.lagging,
          f"revision {record.head}: " + ", ".join(f"{n} from {p}" for n, p in sorted(record.envoys.items()))
          + ("" if not record.lagging else "; behind: " + ", ".join(f"{n} ({w})" for n, w in record.lagging.items())))
