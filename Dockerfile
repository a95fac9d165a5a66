# syntax=docker/dockerfile:1
# One image for every ctrain role; the pod's command picks it:
#   ctrain operator | ctrain train | ctrain serve | ctrain models ...
# Build: docker build -t ctrain:dev .   (or `make image`)

# The builder installs ctrain and its pinned dependencies into a virtualenv. Every
# dependency ships manylinux wheels for CPython 3.11, so no compiler is needed here either.
FROM python:3.11-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/ctrain
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/ctrain/bin/pip install .

# The final stage holds only the Python runtime and the virtualenv: no build tools, no
# sources, no pip cache. The venv's interpreter links to /usr/local/bin/python3.11, which
# is the same in both stages.
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="ctrain" \
      org.opencontainers.image.description="Kubernetes operator for continuous training of ML models" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 65532 ctrain \
    && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin ctrain
COPY --from=builder /opt/ctrain /opt/ctrain
ENV PATH=/opt/ctrain/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so Kubernetes can check runAsNonRoot without resolving a user name.
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["ctrain"]
CMD ["--help"]
