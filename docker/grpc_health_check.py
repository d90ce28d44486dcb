"""Exit 0 when a gRPC server reports SERVING on ``grpc.health.v1`` (the images' health check).

Usage: ``python grpc_health_check.py [HOST:PORT] [SERVICE]`` (default ``127.0.0.1:50051``, the
whole server). Used by the images' HEALTHCHECK and by the chart's ``helm test`` pod; Kubernetes
itself probes with its native ``grpc:`` probes.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(target: str, service: str = "", timeout: float = 3.0) -> bool:
    """True when ``target`` answers SERVING for ``service`` within ``timeout`` seconds."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            print(f"{target}: {error.code().name}", file=sys.stderr)
            return False
    serving: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
    print(f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    return serving


def main(argv: list[str]) -> int:
    """Command-line entry; returns the exit code."""
    target = argv[0] if argv else "127.0.0.1:50051"
    service = argv[1] if len(argv) > 1 else ""
    return 0 if check(target, service) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
