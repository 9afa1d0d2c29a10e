"""Generated protobuf and gRPC code; regenerate with scripts/gen_protos.py."""

from . import fhir_pb2
from . import fhir_pb2_grpc
from . import tools_pb2
from . import tools_pb2_grpc

__all__ = [
    "fhir_pb2",
    "fhir_pb2_grpc",
    "tools_pb2",
    "tools_pb2_grpc",
]
