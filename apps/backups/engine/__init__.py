"""The backup engine: from a clinic's schema to verified bytes in storage and back.

Snapshot and dumpers produce the plain dump, the pipeline compresses, encrypts,
hashes and stores it, pg_clients/psql pick and run the PostgreSQL clients. Only
``apps.backups.services`` and the restore package call into it.
"""
