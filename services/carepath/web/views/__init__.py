"""Pure view-model builders for the worklist pages (no I/O; the clock and the time zone are inputs)."""
