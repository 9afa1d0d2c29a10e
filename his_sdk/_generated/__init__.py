"""Generated protobuf and gRPC code; regenerate with scripts/gen_protos.py."""

