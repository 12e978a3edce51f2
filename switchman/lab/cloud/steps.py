"""The steps a cloud.yaml asks for, in order: GCE host, devstack, OpenStack, Kubernetes, the images."""

from __future__ import annotations

from pathlib import Path

from switchman.lab.cloud.config import CloudConfig
from switchman.lab.cloud.devstack import DevstackStep
from switchman.lab.cloud.images import ImagesStep
from switchman.lab.cloud.kubeadm import KubeadmStep, node_user_data
from switchman.lab.cloud.openstack import OpenStackStep
from switchman.lab.cloud.runner import Context, Progress, Step
from switchman.lab.cloud.state import State

__all__ = ["build_steps", "open_context", "state_path"]


def build_steps(config: CloudConfig, checks: bool = True) -> list[Step]:
    """The steps of ``config``; without ``checks`` the kubeadm step's apply does not wait for the cluster."""
    steps: list[Step] = []
    if config.gce is not None:
        from switchman.lab.cloud.gce import GceStep  # google-cloud-compute: imported only when a lab uses GCE

        steps.append(GceStep())
    if config.devstack is not None:
        steps.append(DevstackStep())
    steps.append(OpenStackStep(node_user_data))
    if config.kubernetes is not None:
        steps.append(KubeadmStep(checks))
        if config.kubernetes.images is not None:
            steps.append(ImagesStep())
    return steps


def state_path(state_dir: Path, config: CloudConfig) -> Path:
    return state_dir / f"{config.name}.state.json"


def open_context(config: CloudConfig, state_dir: Path, progress: Progress | None = None) -> Context:
    """The context of one run: the lab's state file (``<name>.state.json``) and files live in ``state_dir``."""
    state = State.load(state_path(state_dir, config), config.name)
    if progress is None:
        return Context(config, state, state_dir)
    return Context(config, state, state_dir, progress)
