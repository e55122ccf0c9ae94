#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432.
# - One answers already (machines of this kind start one): nothing to do.
# - One is installed but stopped: start its cluster.
# - None is installed: install Debian's, start it, and create a `helpline` role with a generated
#   password, written to .helpline/secrets.env as HELPLINE_DATABASE_URL (never committed).
set -euo pipefail
state_dir=${HELPLINE_STATE_DIR:-.helpline}

answers() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if command -v pg_isready >/dev/null && answers; then exit 0; fi

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "==> no PostgreSQL here: installing Debian's postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  created_cluster=1
fi
version=$(ls /etc/postgresql | sort -V | tail -n1)
echo "==> starting PostgreSQL $version"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 50); do answers && break; sleep 0.2; done
answers || { echo "PostgreSQL did not start; see /var/log/postgresql/" >&2; exit 1; }

if [[ ${created_cluster:-0} == 1 ]] && ! grep -q HELPLINE_DATABASE_URL "$state_dir/secrets.env" 2>/dev/null; then
  password=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 24)
  su postgres -c "psql -q -c \"CREATE ROLE helpline LOGIN CREATEDB PASSWORD '$password'\""
  mkdir -p "$state_dir"
  umask 077
  echo "HELPLINE_DATABASE_URL=postgresql+asyncpg://helpline:$password@127.0.0.1:5432/helpline" >>"$state_dir/secrets.env"
  echo "==> created role helpline; its URL is in $state_dir/secrets.env"
fi
