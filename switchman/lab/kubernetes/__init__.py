"""The lab on a Kubernetes cluster: deploy/kubernetes applied into a namespace of its own, configured through
Switchman's API (``switchman lab up --kubernetes``, ``switchman demo --kubernetes``)."""
