"""Running a node: backups and restores (library.ops.backup)."""
