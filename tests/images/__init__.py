"""The container images scripts/images builds, run for real (through buildah)."""
