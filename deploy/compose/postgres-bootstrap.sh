#!/bin/sh
# Patroni's post_bootstrap (patroni.yml), run once, on the member that initializes the cluster, with the new primary's
# superuser connection string as its argument: the owner role and database wangge (the setup migrates as the owner
# and grants each service's role its own schema) and one login role per service — no superuser, no schema of its own
# to create. Passwords from the environment: WANGGE_PG_OWNER_PASSWORD, WANGGE_PG_<SERVICE>_PASSWORD.
set -eu
dsn=$1
psql -v ON_ERROR_STOP=1 -d "$dsn" -v password="${WANGGE_PG_OWNER_PASSWORD:?WANGGE_PG_OWNER_PASSWORD is not set}" <<'SQL'
CREATE ROLE wangge LOGIN NOSUPERUSER NOCREATEROLE NOBYPASSRLS PASSWORD :'password';
CREATE DATABASE wangge OWNER wangge;
SQL
for svc in intake routing supervision notify; do
  var="WANGGE_PG_$(echo "$svc" | tr a-z A-Z)_PASSWORD"
  eval "password=\${$var:?$var is not set}"
  psql -v ON_ERROR_STOP=1 -d "$dsn" -v role="wangge_$svc" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS PASSWORD :'password';
SQL
done
