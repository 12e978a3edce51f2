"""The gRPC management API (``switchman.v1.Management``), served on the xDS port (either transport).

``management_pb2``, ``management_pb2.pyi`` and ``management_pb2_grpc`` are
generated from ``protos/switchman/v1/management.proto`` by ``scripts/gen-protos``
(do not edit them); ``service`` and ``errors`` are written by hand.
"""

from __future__ import annotations

from switchman.api.grpc.service import ManagementService, add_management_service, management_methods

__all__ = ["ManagementService", "add_management_service", "management_methods"]
