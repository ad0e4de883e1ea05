#!/bin/sh
# Run once by the postgres image at the database's first start (/docker-entrypoint-initdb.d): one login role per
# service, no superuser, no schema of its own to create; the setup container's `python -m shared.migrate` (as the
# owner) grants each its own schema only. Passwords from the container's WANGGE_PG_<SERVICE>_PASSWORD.
set -eu
for svc in intake routing supervision notify; do
  var="WANGGE_PG_$(echo "$svc" | tr a-z A-Z)_PASSWORD"
  eval "password=\${$var:?$var is not set}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v role="wangge_$svc" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS PASSWORD :'password';
SQL
done
