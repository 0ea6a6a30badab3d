#!/usr/bin/env bash
# Runs the whole vitest suite against PostgreSQL and Redis started by testcontainers,
# ignoring any local services. Defaults to the registry-free images that
# shared/tools/container-runtime.sh builds; override TEST_POSTGRES_IMAGE / TEST_REDIS_IMAGE
# (e.g. postgres:15, redis:7) where images can be pulled.
set -euo pipefail

unset TEST_DATABASE_URL TEST_REDIS_URL
export TEST_SERVICES=containers
export TEST_POSTGRES_IMAGE="${TEST_POSTGRES_IMAGE:-offline/postgres:15}"
export TEST_REDIS_IMAGE="${TEST_REDIS_IMAGE:-offline/redis:7}"
# The ryuk reaper image cannot be pulled offline; global-setup stops its containers itself.
export TESTCONTAINERS_RYUK_DISABLED="${TESTCONTAINERS_RYUK_DISABLED:-true}"
export TESTCONTAINERS_HOST_OVERRIDE="${TESTCONTAINERS_HOST_OVERRIDE:-127.0.0.1}"

exec npx vitest run "$@"
