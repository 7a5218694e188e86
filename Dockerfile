# The chromasync image: every command (producer, workers, demo, bench) from pinned versions.
# Third-party packages come from deploy/requirements/image.txt (`make lock`: CPython 3.11,
# Linux x86_64), hashes checked, wheels only; the project goes on top without dependencies.
# tests/test_dockerfile.py checks this file against the repository.
FROM python:3.11-slim-bookworm

# procps: pgrep, for the workers' healthcheck in docker-compose.yml.
RUN apt-get update && apt-get install -y --no-install-recommends procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The lock on its own first, so a change of code reuses the installed packages.
COPY deploy/requirements/image.txt deploy/requirements/image.txt
RUN pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
        --require-hashes --no-deps --only-binary=:all: -r deploy/requirements/image.txt

COPY pyproject.toml README.md celeryconfig.py ./
COPY producers producers
COPY tasks tasks
COPY chromasync chromasync
COPY benchmarks benchmarks
COPY docs/prometheus.yml docs/prometheus.yml
# The lock holds the build backend too: nothing unpinned is fetched.
RUN pip install --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
        --no-deps --no-build-isolation . \
    && pip check

# A user of its own; its home is the working directory, where the relative defaults
# (.chromasync/: the demo, the benchmarks, an embedded Chroma) are written.
RUN useradd --create-home --uid 10001 --user-group chromasync
USER chromasync
WORKDIR /home/chromasync
ENV PYTHONUNBUFFERED=1
CMD ["chromasync", "--help"]
