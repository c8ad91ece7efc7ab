# syntax=docker/dockerfile:1
# The Libra Arena image: one image for every process (API, job workers, migrations), chosen by the
# command, e.g. `serve --no-worker --workers 2`, `worker --queue cpu`, `db upgrade`.
# It installs the project the way scripts/install.sh does (pip install -e, then `libra data install`)
# and bundles the web pages with Node in a stage of their own, so the runtime carries no Node.
#
#   docker build -t libra-arena:0.1.0 .                                 # CPU image
#   docker build -t libra-arena-gpu:0.1.0 --build-arg EXTRAS=gpu .      # + vLLM (in-process GPU backend)
#
# deploy/compose.yaml and deploy/k8s/ use these tags; docs/deploy.md has the rest.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# --- the web pages: npm packages from package-lock.json, then esbuild into frontend/dist -----------
FROM ${NODE_IMAGE} AS pages
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ frontend/
RUN node frontend/build.mjs

# --- the Python environment: llama-cpp-python compiles from source (no wheel on PyPI) --------------
FROM ${PYTHON_IMAGE} AS python
ARG EXTRAS=""
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends build-essential cmake git \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN python -m venv /app/.venv \
 && /app/.venv/bin/pip install --no-cache-dir --upgrade pip wheel \
 && CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" /app/.venv/bin/pip install --no-cache-dir -e ".${EXTRAS:+[$EXTRAS]}" \
 && /app/.venv/bin/libra data install --quiet

# --- the runtime: no compilers, no Node, a non-root user ------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# libgomp: llama.cpp's OpenMP threads; curl: health checks from compose.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 libra \
 && useradd --system --uid 10001 --gid libra --home-dir /var/lib/libra --create-home libra
COPY --from=python /app /app
COPY --from=pages /src/frontend/dist /app/frontend/dist
# LIBRA_HOME holds what a process generates when no setting gives it (secret.key, session.key,
# voter.salt) and, without LIBRA_DATABASE_URL, an embedded Postgres; HOME holds the GGUF cache
# (~/.cache/libra/models). Both belong to the libra user, the code does not.
ENV PATH=/app/.venv/bin:$PATH \
    HOME=/var/lib/libra \
    LIBRA_HOME=/var/lib/libra/home \
    LIBRA_HOST=0.0.0.0 \
    LIBRA_LOG_JSON=true \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/libra
EXPOSE 8000
ENTRYPOINT ["libra"]
CMD ["serve", "--no-worker"]
