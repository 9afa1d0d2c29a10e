"""Generated protobuf and gRPC code; regenerate with scripts/gen_protos.py."""

from . import approval_pb2
from . import approval_pb2_grpc
from . import fhir_pb2
from . import fhir_pb2_grpc
from . import inference_pb2
from . import inference_pb2_grpc
from . import tools_pb2
from . import tools_pb2_grpc

__all__ = [
    "approval_pb2",
    "approval_pb2_grpc",
    "fhir_pb2",
    "fhir_pb2_grpc",
    "inference_pb2",
    "inference_pb2_grpc",
    "tools_pb2",
    "tools_pb2_grpc",
]
