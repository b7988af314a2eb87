# The genesis image: one console command, `genesis`; SERVICE_TYPE (api | message-relay) or a
# subcommand (migrate, api, relay, outbox …) picks what a container runs. See compose.yml.

# --- build: the package and its dependencies into a virtualenv ---------------------------------
FROM python:3.11.9-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/genesis
WORKDIR /src
COPY pyproject.toml README.md ./
COPY genesis ./genesis
COPY api ./api
COPY relay ./relay
COPY agents ./agents
# sql/ travels inside the wheel as genesis/sql (hatch force-include), where genesis.migrate finds it.
COPY sql ./sql
RUN /opt/genesis/bin/pip install .

# --- run: slim, no build tools, not root ----------------------------------------------------------
FROM python:3.11.9-slim-bookworm
ENV PATH=/opt/genesis/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 genesis \
    && useradd --system --uid 10001 --gid genesis --no-create-home --home-dir /nonexistent genesis
COPY --from=build /opt/genesis /opt/genesis
USER 10001:10001
WORKDIR /tmp
# API_PORT and RELAY_METRICS_PORT defaults.
EXPOSE 8000 9100
ENTRYPOINT ["genesis"]
