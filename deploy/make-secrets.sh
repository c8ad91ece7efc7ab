#!/usr/bin/env bash
# Writes the secrets of a deployment into a folder that git ignores, once (an existing file is kept:
# a new LIBRA_SECRET_KEY would make every stored endpoint key unreadable).
#
#   deploy/make-secrets.sh                                  # deploy/secrets/ for deploy/compose.yaml
#   deploy/make-secrets.sh --database-url URL deploy/k8s/secrets   # for kubectl apply -k deploy/k8s
#
# FOLDER/libra.env: LIBRA_DATABASE_URL, LIBRA_SECRET_KEY (Fernet key of endpoint API keys at rest),
# LIBRA_SESSION_SECRET and LIBRA_ARENA_VOTER_SALT (every API process must share them, docs/security.md).
# FOLDER/postgres_password: the password of compose's Postgres (and of the default URL).
# Without --database-url the URL points at compose's Postgres service.
set -euo pipefail
umask 077

url=""
folder=""
while [ $# -gt 0 ]; do
  case "$1" in
    --database-url) [ $# -ge 2 ] || { echo "error: --database-url needs a URL" >&2; exit 2; }; url="$2"; shift 2 ;;
    --database-url=*) url="${1#*=}"; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) [ -z "$folder" ] || { echo "error: one folder only" >&2; exit 2; }; folder="$1"; shift ;;
  esac
done
folder="${folder:-$(dirname "$0")/secrets}"
case "$url" in
  ""|postgresql://*|postgresql+psycopg://*|postgres://*) ;;
  *) echo "error: --database-url must start with postgresql:// (got ${url%%:*}://...)" >&2; exit 2 ;;
esac

random() { python3 -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom($1)).decode())"; }

mkdir -p "$folder"
if [ ! -e "$folder/postgres_password" ]; then
  random 24 | tr -d '=\n' | tr '/+_-' 'xyzw' >"$folder/postgres_password"
fi
if [ -e "$folder/libra.env" ]; then
  echo "kept $folder/libra.env (delete it first to make new secrets)" >&2
else
  password="$(cat "$folder/postgres_password")"
  {
    echo "LIBRA_DATABASE_URL=${url:-postgresql://libra:${password}@postgres:5432/libra}"
    echo "LIBRA_SECRET_KEY=$(random 32)"   # a Fernet key: 32 random bytes, URL-safe base64
    echo "LIBRA_SESSION_SECRET=$(random 32)"
    echo "LIBRA_ARENA_VOTER_SALT=$(random 32)"
  } >"$folder/libra.env"
  echo "wrote $folder/libra.env and $folder/postgres_password (mode 0600)" >&2
fi
