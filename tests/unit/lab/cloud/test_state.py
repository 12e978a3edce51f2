"""The state file: records survive a reload in order, and a state of another lab is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchman.errors import LabError
from switchman.lab.cloud import Record, State


def test_records_and_outputs_survive_a_reload(tmp_path: Path) -> None:
    state = State(tmp_path / "s.json", "demo")
    state.add(Record("openstack", "network", "demo-net", "n1"))
    state.add(Record("openstack", "subnet", "demo-subnet", "s1", {"network_id": "n1"}))
    state.set_output("openstack", "floating_ip/demo-master", "203.0.113.7")
    again = State.load(tmp_path / "s.json", "demo")
    assert [r.name for r in again.reversed_of_step("openstack")] == ["demo-subnet", "demo-net"]
    assert again.output("openstack", "floating_ip/demo-master") == "203.0.113.7"
    again.forget_step("openstack")
    assert State.load(tmp_path / "s.json", "demo").outputs == {}


def test_a_state_of_another_lab_is_refused(tmp_path: Path) -> None:
    State(tmp_path / "s.json", "demo").save()
    with pytest.raises(LabError, match="belongs to the lab 'demo'"):
        State.load(tmp_path / "s.json", "other")
