# fti-feature: the reference feature pipeline image (docs/pipeline-contract.md).
# Build from the repository root:  docker build -f pipeline_images/docker/feature.Dockerfile -t ghcr.io/fti-dev/fti-feature .
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY operator/ /src/operator/
COPY pipeline_images/ /src/pipeline_images/
RUN /opt/venv/bin/pip install /src/operator "/src/pipeline_images[s3]"

FROM python:3.11-slim
# Non-root, and nothing written outside /tmp (the pods run with a read-only root
# filesystem and an emptyDir at /tmp).
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin fti
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "fti_pipelines.feature"]
