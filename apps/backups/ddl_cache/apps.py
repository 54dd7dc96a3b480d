from django.apps import AppConfig


class DdlCacheConfig(AppConfig):
    """The backups' DDL cache: shared by every clinic, so it lives in ``public``
    (a shared app), unlike the backup history, which lives in each clinic's schema."""

    name = "apps.backups.ddl_cache"
    label = "backups_ddl_cache"
    verbose_name = "Backups: DDL por estructura"
