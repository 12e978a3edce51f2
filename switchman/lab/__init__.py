"""The data-plane lab: real Envoys, upstreams and load, on this machine or on a nested cloud."""
