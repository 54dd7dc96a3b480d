"""The clinic's REST API for backups: views, serializers, streamed responses and
the exception handler that maps ``BackupError`` to JSON."""
