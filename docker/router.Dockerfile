# syntax=docker/dockerfile:1
# The router: slim Python, onnxruntime and the classifier artefact baked in, non-root.
# Build from the repository root after the classifier is exported:
#   docker build -f docker/router.Dockerfile -t tierroute/router:TAG .
# CLASSIFIER_DIR (inside the build context) must hold router.int8.onnx, tokenizer.json and
# card.json (MiniLM), and static/ with embeddings.npy, tokenizer.json and card.json (the static
# encoder, the router's default).
# The base images are pinned tags given as build arguments, which checkov cannot resolve:
# checkov:skip=CKV_DOCKER_7:base images are pinned (non-latest) tags passed through ARG
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tierroute ./tierroute
COPY router_svc ./router_svc
# The OpenAI-compatible sidecar (python -m openai_gateway) runs from the same image.
COPY openai_gateway ./openai_gateway
# Only the router's extra: onnxruntime, tokenizers, numpy; no torch, no vLLM. DL3013 wants
# `name==version`: this installs the project from its own source, whose dependencies carry
# their pins in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install ".[router]" && pip uninstall -y pip setuptools wheel

FROM ${PYTHON_IMAGE} AS runtime
ARG CLASSIFIER_DIR=artifacts/classifier
LABEL org.opencontainers.image.title="tierroute-router" \
      org.opencontainers.image.description="tierroute router: rules, ONNX classifier, cascade over model tiers (gRPC)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TMPDIR=/tmp
RUN groupadd --system --gid 10001 tierroute \
    && useradd --system --uid 10001 --gid tierroute --home-dir /nonexistent --shell /usr/sbin/nologin tierroute
COPY --from=build /opt/venv /opt/venv
# 0555, not 0444: --chmod applies to the copied directories too (static/), and the router's
# non-root user must be able to enter them.
COPY --chmod=0555 ${CLASSIFIER_DIR}/ /opt/tierroute/classifier/
COPY --chmod=0555 docker/grpc_health_check.py /opt/tierroute/bin/grpc_health_check.py
USER 10001:10001
EXPOSE 50051 9464
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/opt/tierroute/bin/grpc_health_check.py", "127.0.0.1:50051"]
ENTRYPOINT ["python", "-m", "router_svc"]
CMD ["--config", "/etc/tierroute/router.yaml"]
