"""Automatic backups: due rules (``rules``), the due query (``selectors``),
exactly-once slot claims (``claims``), the cron run (``run``) and retention."""
