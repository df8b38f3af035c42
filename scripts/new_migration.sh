#!/usr/bin/env bash
# Generate an auto migration for one app against a scratch PostgreSQL database
# (Piccolo's auto migrations are reliable there, see shared/STACK.md), then make
# it portable: PortableMigrationManager instead of MigrationManager.
# Usage: scripts/new_migration.sh APP "description"
set -euo pipefail
app="$1"; desc="${2:-$1 changes}"
cd "$(dirname "$0")/.."
admin="${LIBRARY_SCRATCH_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/test}"
scratch="library_migration_scratch_$$"
psql "$admin" -q -c "CREATE DATABASE $scratch"
trap 'psql "$admin" -q -c "DROP DATABASE IF EXISTS $scratch"' EXIT
before=$(ls library/"$app"/piccolo_migrations/ | sort)
LIBRARY_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$scratch" LIBRARY_DATA_DIR="$(mktemp -d)" \
  .venv/bin/piccolo migrations new "$app" --auto
for f in library/"$app"/piccolo_migrations/*.py; do
  grep -q "^from piccolo.apps.migrations.auto.migration_manager import MigrationManager$" "$f" || continue
  sed -i 's/^from piccolo.apps.migrations.auto.migration_manager import MigrationManager$/from library.migration_support import PortableMigrationManager/; s/manager = MigrationManager(/manager = PortableMigrationManager(/' "$f"
  sed -i "s/^DESCRIPTION = .*/DESCRIPTION = \"$desc\"/" "$f"
  echo "made portable: $f"
done
