"""The nested cloud lab: GCE host -> devstack -> OpenStack project and servers -> kubeadm Kubernetes.

``switchman lab cloud plan|apply|status|destroy -f cloud.yaml``. Each step
(:mod:`.gce`, :mod:`.devstack`, :mod:`.openstack`, :mod:`.kubeadm`) plans
without touching anything, applies idempotently and records what it created
in one state file (:mod:`.state`), so destroy removes exactly that, in reverse
(:mod:`.runner`).
"""

from __future__ import annotations

from switchman.lab.cloud.config import CloudConfig, load_config, parse_config
from switchman.lab.cloud.plan import Action, Plan, RenderedFile, StepPlan, format_plan
from switchman.lab.cloud.runner import Context, PrintProgress, StatusLine, Step
from switchman.lab.cloud.state import Record, State

__all__ = [
    "Action",
    "CloudConfig",
    "Context",
    "Plan",
    "PrintProgress",
    "Record",
    "RenderedFile",
    "State",
    "StatusLine",
    "Step",
    "StepPlan",
    "format_plan",
    "load_config",
    "parse_config",
]
