# One image for every ctrain role; the pod's command picks it:
#   ctrain operator | ctrain train | ctrain serve | ctrain models ...
# Build: `make image` (finds or starts a Docker engine and, where the default base cannot
# be pulled, makes an equivalent locally), or plainly `docker build -t ctrain:dev .`.

# Any Debian-like image with CPython 3.11 (`python` on PATH, venv, useradd) will do.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="ctrain" \
      org.opencontainers.image.description="Kubernetes operator for continuous training of ML models" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 65532 ctrain \
    && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin ctrain

# ctrain and its pinned dependencies live in a virtualenv. Every dependency ships
# manylinux wheels for CPython 3.11, so the image needs no compiler, and it keeps no
# sources and no pip cache. One stage, in layers that change at different paces: the
# dependencies (from pyproject.toml alone) first, the code last, so a change to the code
# rebuilds a small layer instead of every dependency.
# PACKAGE_INDEX: a package index for pip; empty means pip's default index. `make image`
# points it at a local index of wheels downloaded on the host where the build has no
# network of its own.
ARG PACKAGE_INDEX=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/ctrain
WORKDIR /src
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > requirements.txt \
    && /opt/ctrain/bin/pip install ${PACKAGE_INDEX:+--index-url "$PACKAGE_INDEX"} -r requirements.txt
COPY README.md ./
COPY operator ./operator
RUN /opt/ctrain/bin/pip install ${PACKAGE_INDEX:+--index-url "$PACKAGE_INDEX"} --no-deps . \
    && rm -rf /src

ENV PATH=/opt/ctrain/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so Kubernetes can check runAsNonRoot without resolving a user name.
USER 65532:65532
WORKDIR /tmp
# The root filesystem may be read-only (`docker run --read-only`, the pods'
# readOnlyRootFilesystem): /tmp, home and scratch space, is the one writable path. The
# pods mount an emptyDir there or at /var/tmp (their TMPDIR).
VOLUME ["/tmp"]
ENTRYPOINT ["ctrain"]
CMD ["--help"]
