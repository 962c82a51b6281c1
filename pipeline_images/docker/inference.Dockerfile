# fti-inference: the reference inference pipeline image (docs/pipeline-contract.md).
# Build from the repository root:  make images   (or: docker build -f pipeline_images/docker/inference.Dockerfile .)
#
# BASE is python:3.11-slim where a registry is reachable; images/base.sh makes an
# equivalent Debian bookworm + python3.11 base locally when none is (docs/images.md).
#
# Layers (docs/images.md, "Layers"): the dependencies are installed in layers keyed only
# by the pyproject files — first what every pipeline image needs, in steps spelled the
# same in the three pipeline Dockerfiles so the three images share those layers, then
# this image's extras — the two packages are built as wheels in a stage of their own, and
# the image adds them with --no-deps last, so a source change rebuilds and ships one
# small layer.
ARG BASE=python:3.11-slim
FROM ${BASE} AS build
# Set by images/build.sh when outgoing TLS is re-signed and the host's CA bundle is mounted.
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY tools/requirements.py /src/tools/
COPY operator/pyproject.toml /src/operator/
COPY pipeline_images/pyproject.toml /src/pipeline_images/
RUN python -m venv /opt/build \
 && python /src/tools/requirements.py --build-system /src/operator/pyproject.toml /src/pipeline_images/pyproject.toml \
      >/src/build-requirements.txt \
 && /opt/build/bin/pip install -r /src/build-requirements.txt
COPY operator/ /src/operator/
COPY pipeline_images/ /src/pipeline_images/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation -w /wheels /src/operator /src/pipeline_images

FROM ${BASE}
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Non-root, and nothing written outside /tmp (the pods run with a read-only root
# filesystem and an emptyDir at /tmp).
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin fti \
 && python -m venv /opt/venv
COPY tools/requirements.py /src/tools/
COPY images/slim.sh /src/images/
COPY operator/pyproject.toml /src/operator/
COPY pipeline_images/pyproject.toml /src/pipeline_images/
RUN python /src/tools/requirements.py /src/operator/pyproject.toml /src/pipeline_images/pyproject.toml >/src/requirements.txt \
 && /opt/venv/bin/pip install -r /src/requirements.txt \
 && sh /src/images/slim.sh /opt/venv
RUN python /src/tools/requirements.py --extras-only /src/operator/pyproject.toml "/src/pipeline_images/pyproject.toml[serving,s3]" >/src/requirements-inference.txt \
 && /opt/venv/bin/pip install -r /src/requirements.txt -r /src/requirements-inference.txt \
 && sh /src/images/slim.sh /opt/venv
# SIGTERM must stop the pipeline when it runs as PID 1 (see images/sitecustomize.py).
COPY images/sitecustomize.py /opt/venv/lib/python3.11/site-packages/sitecustomize.py
# The packages alone, from their wheels (pip compiles their bytecode as it installs them).
COPY --from=build /wheels/ /tmp/wheels/
RUN /opt/venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl && rm -rf /tmp/wheels
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["python", "-m", "fti_pipelines.serving"]
