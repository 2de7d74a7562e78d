"""Verified backups: snapshot tables (portable or native format), verify by restoring, restore for real.

A backup is only worth what its last tested restore proved, so every backup carries per-table
checksums computed by the diff's own row-hash machinery (``dmig.diff``), and ``verify_backup``
restores it into a scratch database and compares. Rollback and the executor use
``dmig.backup.service.latest_verified_backup`` and ``dmig.backup.service.restore_tables``.
"""
