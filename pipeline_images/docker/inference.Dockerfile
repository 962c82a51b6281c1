# fti-inference: the reference inference pipeline image (docs/pipeline-contract.md).
# Build from the repository root:  make images   (or: docker build -f pipeline_images/docker/inference.Dockerfile .)
#
# BASE is python:3.11-slim where a registry is reachable; images/base.sh makes an
# equivalent Debian bookworm + python3.11 base locally when none is (docs/images.md).
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
# Set by images/build.sh when outgoing TLS is re-signed and the host's CA bundle is mounted.
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY operator/ /src/operator/
COPY pipeline_images/ /src/pipeline_images/
RUN /opt/venv/bin/pip install /src/operator "/src/pipeline_images[serving,s3]" \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib
# SIGTERM must stop the pipeline when it runs as PID 1 (see images/sitecustomize.py).
COPY images/sitecustomize.py /opt/venv/lib/python3.11/site-packages/sitecustomize.py

FROM ${BASE}
# Non-root, and nothing written outside /tmp (the pods run with a read-only root
# filesystem and an emptyDir at /tmp).
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin fti
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "fti_pipelines.serving"]
