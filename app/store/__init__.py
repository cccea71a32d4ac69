"""The database: records, the unit of work, writes, cursors, idempotency keys, field encryption; calls nothing above."""
