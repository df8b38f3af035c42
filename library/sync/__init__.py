"""Branch <-> central replication: a change feed down, an upload queue up, written conflict rules."""
