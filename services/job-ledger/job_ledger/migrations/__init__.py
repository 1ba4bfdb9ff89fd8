"""The ledger's own migrations (``NNNN_*.sql``, unqualified names, applied into its schema)."""

from pathlib import Path

from chassis.migrations import MigrationSource

MIGRATIONS = MigrationSource("job-ledger", Path(__file__).parent)
