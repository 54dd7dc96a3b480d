"""PsicoAdmin settings. Everything configurable comes from environment variables
(the README has the table); nothing secret lives in this file."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url

from config import embedded_postgres, embedded_redis
from config.env import ConfigurationError, email_settings, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("PSICO_DATA_DIR") or BASE_DIR / ".data")
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or a random key kept in the git-ignored data folder."""
    configured = env_str("DJANGO_SECRET_KEY")
    if configured:
        return configured
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


def _database() -> dict:
    url = env_str("DATABASE_URL")
    if not url:
        data_dir, port = embedded_postgres.configured_location()
        config = embedded_postgres.database_settings(data_dir, port)
    else:
        try:
            config = dj_database_url.parse(url, conn_max_age=0)
        except Exception as error:  # dj-database-url raises several types for bad URLs
            raise ConfigurationError(
                f"DATABASE_URL no es válida ({error}). Formato: postgres://usuario:clave@host:5432/base"
            ) from None
        if config.get("ENGINE") != "django.db.backends.postgresql" or not config.get("NAME"):
            raise ConfigurationError(
                "DATABASE_URL debe apuntar a PostgreSQL con nombre de base: postgres://usuario:clave@host:5432/base"
            )
    config["ENGINE"] = "django_tenants.postgresql_backend"
    config.setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5))
    config["TEST"] = {"NAME": env_str("TEST_DATABASE_NAME") or f"test_{config['NAME']}"}
    return config


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", ".localhost", "127.0.0.1"])


def _only_local_hosts(hosts: list[str]) -> bool:
    return all(host in {"localhost", "127.0.0.1", "[::1]"} or host.endswith(".localhost") for host in hosts)


# HTTPS only (README: "Security"): on unless debugging or serving only local host
# names (make demo / make serve stay on plain HTTP); DJANGO_HTTPS overrides.
HTTPS = env_bool("DJANGO_HTTPS", not DEBUG and not _only_local_hosts(ALLOWED_HOSTS))
if HTTPS:
    SECURE_SSL_REDIRECT = True
    # Render (and most platforms) end TLS at their proxy and say so in this header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True  # the clinics' domains are subdomains
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True

SHARED_APPS = [
    "django_tenants",
    "apps.tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",  # its Spanish messages
    "drf_spectacular",
    # Sign-in attempts and records, token blacklist: in public for the platform's
    # own users, and in every clinic's schema (TENANT_APPS) for its users.
    "axes",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from our own static files
    # Platform staff log into the public admin, so users exist in public too.
    "apps.users",
    # DDL shared by every clinic of one structure (the fast SQL backup), in public.
    "apps.backups.ddl_cache",
]

TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "apps.users",
    "axes",
    "rest_framework_simplejwt.token_blacklist",
    "apps.clinic_admin",
    "apps.professionals",
    "apps.appointments",
    "apps.chat",
    "apps.clinical_history",
    "apps.payment_system",
    "apps.backups",
    "apps.backups_page",
]

INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Clinic"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False

MIDDLEWARE = [
    # First: the platform's health check answers whatever host it sends (config/liveness.py).
    "config.liveness.LivenessMiddleware",
    "django_tenants.middleware.main.TenantMainMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The page's CSS and JavaScript, served by the project itself (no CDN).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Sessions of another clinic or from before the clinic's last restore end here.
    "apps.users.sessions.ClinicSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a django-axes lockout of a session sign-in (admin, clinic pages) into 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls_tenants"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": _database()}
# A second connection to the same database: the JSON backup reads a clinic in
# its own REPEATABLE READ transaction, whatever the caller's transaction is.
DATABASES["backup_reader"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "users.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses locked-out sign-ins before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LANGUAGE_CODE = "es"
TIME_ZONE = env_str("TIME_ZONE") or "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# WhiteNoise serves the apps' static files straight from their folders: a handful
# of small files, so no collectstatic step is needed in the build (no STATIC_ROOT).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = False

# The clinic's backups page (apps.backups_page) signs in with a session.
LOGIN_URL = "backups_page:sign_in"
CSRF_FAILURE_VIEW = "apps.backups_page.views.csrf_failure"
SESSION_COOKIE_HTTPONLY = True
# Secure-only cookies whenever the site is HTTPS only (DJANGO_HTTPS); the variable overrides.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# A page of history to show at a time.
BACKUPS_PAGE_SIZE = env_int("BACKUPS_PAGE_SIZE", 20)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.users.authentication.ClinicJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "config.api_errors.api_exception_handler",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=env_int("JWT_REFRESH_HOURS", 24)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    # last_login is updated by the user_logged_in signal the token endpoint sends.
    "UPDATE_LAST_LOGIN": False,
    # Revocable tokens (README: "Security"): each refresh gives a new refresh token and
    # blacklists the old one; a password change voids access tokens (hash claim).
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "CHECK_REVOKE_TOKEN": True,
}

# Sign-in protection (django-axes; README: "Security"). Failures are counted in the
# database (each clinic's schema), so every web process shares them.
AUTH_LOCKOUT_FAILURES = env_int("AUTH_LOCKOUT_FAILURES", 5)  # for one account
# From one address, over any accounts: a clinic's staff share their office's address.
AUTH_LOCKOUT_ADDRESS_FAILURES = env_int("AUTH_LOCKOUT_ADDRESS_FAILURES", 20)
AUTH_LOCKOUT_MINUTES = env_int("AUTH_LOCKOUT_MINUTES", 15)  # first cool-down; doubled per further lockout
AUTH_LOCKOUT_MAX_MINUTES = env_int("AUTH_LOCKOUT_MAX_MINUTES", 24 * 60)
AXES_FAILURE_LIMIT = AUTH_LOCKOUT_FAILURES
AXES_COOLOFF_TIME = "apps.users.sign_ins.sign_in_cool_off"
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]  # either one reaching its limit locks
AXES_HANDLER = "apps.users.sign_in_handler.SignInAttemptsHandler"  # the address's own limit
# A success clears that account's own failures only (apps.users.signals): axes' reset would also
# clear every failure from the signing-in address, so a colleague could guess the admin's password
# for ever by signing in as themself between guesses.
AXES_RESET_ON_SUCCESS = False
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_CLIENT_IP_CALLABLE = "apps.users.sign_ins.client_address"
AXES_USERNAME_CALLABLE = "apps.users.sign_ins.sign_in_username"
AXES_LOCKOUT_CALLABLE = "apps.users.sign_ins.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# Attempts while locked out are refused without being counted: the cool-down runs from the lockout.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Destructive operations (restore, deleting a backup) need the password in the same
# request or a sign-in within this many minutes (apps/users/reauth.py).
REAUTH_WINDOW_MINUTES = env_int("REAUTH_WINDOW_MINUTES", 5)

SPECTACULAR_SETTINGS = {
    "TITLE": "PsicoAdmin API",
    "DESCRIPTION": "API por clínica de PsicoAdmin: autenticación, backups y configuración.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies as their own components: required text fields say minLength 1, as validated.
    "COMPONENT_SPLIT_REQUEST": True,
    # /api/docs/: Swagger UI from our own static files (no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "apps": {"handlers": ["console"], "level": env_str("LOG_LEVEL") or "INFO"},
        "django": {"handlers": ["console"], "level": "WARNING"},
    },
}

DEMO_PASSWORD = env_str("DEMO_PASSWORD") or "psicoadmin-demo"

# The clinic data apps (the guide's list): what the JSON fallback exports and the
# demo fills.
CLINIC_DATA_APPS = ["users", "professionals", "appointments", "chat", "clinical_history", "payment_system"]

# Backups (README: "Environment variables").
BACKUP_STORAGE_BACKEND = env_str("BACKUP_STORAGE_BACKEND") or "local"
BACKUP_LOCAL_ROOT = Path(env_str("BACKUP_LOCAL_ROOT") or DATA_DIR / "backups")
BACKUP_SQL_STYLE = env_str("BACKUP_SQL_STYLE") or "copy"  # copy | inserts
BACKUP_ROWS_PER_INSERT = env_int("BACKUP_ROWS_PER_INSERT", 1000)
BACKUP_PG_BIN_DIR = env_str("BACKUP_PG_BIN_DIR")  # when set, the only folder searched for pg_dump/psql
MAX_BACKUP_SIZE = env_int("MAX_BACKUP_SIZE", 100 * 1024 * 1024)  # plain bytes, backups made through the API
# Proxies in front of the app that append to X-Forwarded-For (Render: 1). 0 trusts no header:
# the address recorded for a download is then REMOTE_ADDR.
NUM_PROXIES = env_int("NUM_PROXIES", 0)
BACKUP_ZSTD_LEVEL = env_int("BACKUP_ZSTD_LEVEL", 3)
BACKUP_STALE_AFTER_MINUTES = env_int("BACKUP_STALE_AFTER_MINUTES", 360)
# Remote backup storage (README: "Storage backends"). Read only by the backend
# that BACKUP_STORAGE_BACKEND chooses.
BACKUP_STORAGE_TIMEOUT = env_int("BACKUP_STORAGE_TIMEOUT", 60)  # seconds per request (connect / read)
# per request, transient failures: 9 attempts wait 36–72 s in all, outlasting a storage restart
BACKUP_STORAGE_MAX_ATTEMPTS = env_int("BACKUP_STORAGE_MAX_ATTEMPTS", 9)
BACKUP_STORAGE_RETRY_BACKOFF_MS = env_int("BACKUP_STORAGE_RETRY_BACKOFF_MS", 500)  # first wait, doubled per retry
BACKUP_S3_BUCKET = env_str("BACKUP_S3_BUCKET")
BACKUP_S3_ENDPOINT_URL = env_str("BACKUP_S3_ENDPOINT_URL")  # unset: AWS S3
BACKUP_S3_REGION = env_str("BACKUP_S3_REGION") or "us-east-1"
BACKUP_S3_ACCESS_KEY_ID = env_str("BACKUP_S3_ACCESS_KEY_ID")  # unset: the standard AWS credential chain
BACKUP_S3_SECRET_ACCESS_KEY = env_str("BACKUP_S3_SECRET_ACCESS_KEY")
BACKUP_S3_ADDRESSING_STYLE = env_str("BACKUP_S3_ADDRESSING_STYLE") or "auto"  # auto | path | virtual
BACKUP_S3_PREFIX = env_str("BACKUP_S3_PREFIX")  # optional folder inside the bucket
BACKUP_S3_PART_SIZE_MB = env_int("BACKUP_S3_PART_SIZE_MB", 8)  # multipart part size: memory per upload
SUPABASE_URL = env_str("SUPABASE_URL")
SUPABASE_KEY = env_str("SUPABASE_KEY")  # the service-role key: a secret, never logged
SUPABASE_BUCKET_NAME = env_str("SUPABASE_BUCKET_NAME") or "backups"
# age encryption: recipients (public keys) encrypt; the identity file (private
# key) is needed to download and restore. The demo generates a pair in DATA_DIR.
BACKUP_AGE_RECIPIENTS = env_list("BACKUP_AGE_RECIPIENTS", [])
_demo_identity = DATA_DIR / "age" / "identity.txt"
BACKUP_AGE_IDENTITY_FILE = env_str("BACKUP_AGE_IDENTITY_FILE") or (
    str(_demo_identity) if _demo_identity.exists() else ""
)
# Restores: how long the schema set aside by a restore (the state before it) is kept.
BACKUP_RESTORE_KEEP_DAYS = env_int("BACKUP_RESTORE_KEEP_DAYS", 7)
# The DDL cache: entries no backup has used for this long are removed by cleanup_old_backups.
BACKUP_DDL_CACHE_KEEP_DAYS = env_int("BACKUP_DDL_CACHE_KEEP_DAYS", 30)
MAX_RESTORE_UPLOAD_SIZE = env_int("MAX_RESTORE_UPLOAD_SIZE", 200 * 1024 * 1024)

# Automatic backups, retention and monitoring (README: "Automatic backups").
BACKUP_SCHEDULE_LEASE_SECONDS = env_int("BACKUP_SCHEDULE_LEASE_SECONDS", 600)  # renewed while a backup runs
BACKUP_RETRY_BASE_MINUTES = env_int("BACKUP_RETRY_BASE_MINUTES", 5)  # first retry after a failure; doubles
BACKUP_RETRY_MAX_MINUTES = env_int("BACKUP_RETRY_MAX_MINUTES", 240)
BACKUP_RETENTION_DAILY_DAYS = env_int("BACKUP_RETENTION_DAILY_DAYS", 30)
BACKUP_RETENTION_WEEKLY_DAYS = env_int("BACKUP_RETENTION_WEEKLY_DAYS", 183)
BACKUP_RETENTION_FAILED_DAYS = env_int("BACKUP_RETENTION_FAILED_DAYS", 14)
BACKUP_ORPHAN_GRACE_HOURS = env_int("BACKUP_ORPHAN_GRACE_HOURS", 24)
BACKUP_HEALTH_TOKEN = env_str("BACKUP_HEALTH_TOKEN")
BACKUP_HEALTH_GRACE_MINUTES = env_int("BACKUP_HEALTH_GRACE_MINUTES", 120)


# ---- Failure alerts for the platform's operators (README: "Alerts") ----
# Email through Django's email framework, configured from one SMTP URL.
globals().update(email_settings(env_str("EMAIL_URL")))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL") or "PsicoAdmin <backups@localhost>"
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_SUBJECT_PREFIX = "[PsicoAdmin] "
BACKUP_ALERT_EMAILS = env_list("BACKUP_ALERT_EMAILS", [])  # the platform's operators
BACKUP_ALERT_CLINIC_ADMINS = env_bool("BACKUP_ALERT_CLINIC_ADMINS", False)  # also the clinic's own admins
BACKUP_ALERT_WEBHOOK_URL = env_str("BACKUP_ALERT_WEBHOOK_URL")  # Slack-compatible incoming webhook (a secret)
BACKUP_ALERT_REPEAT_HOURS = env_int("BACKUP_ALERT_REPEAT_HOURS", 6)  # a lasting failure is re-announced this often
BACKUP_ALERT_TIMEOUT = env_int("BACKUP_ALERT_TIMEOUT", 10)  # seconds for the SMTP server or the webhook
# ---- end of alerts ----

# Long operations as Celery jobs (README: "Jobs"). CELERY_BROKER_URL unset: the
# project-local Redis (config/embedded_redis.py), started when first needed, and
# run_scheduled_backups backs up in its own process as before.
CELERY_BROKER_CONFIGURED = bool(env_str("CELERY_BROKER_URL"))
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or embedded_redis.broker_url(embedded_redis.configured_location()[1])
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or CELERY_BROKER_URL
# Run jobs in the calling process instead of sending them (tests of the API shape; never in production).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# A message whose worker died is delivered again after this many seconds: longer
# than the longest backup or restore (a live worker's task is never handed to another).
BACKUP_JOB_VISIBILITY_TIMEOUT = env_int("BACKUP_JOB_VISIBILITY_TIMEOUT", 6 * 3600)
BACKUP_JOB_RESTORE_INTERVAL = env_int("BACKUP_JOB_RESTORE_INTERVAL", 10)  # how often workers look for such messages
# A slot enqueued by the scheduler but not yet taken by a worker is enqueued again after this.
BACKUP_JOB_QUEUED_LEASE_SECONDS = env_int("BACKUP_JOB_QUEUED_LEASE_SECONDS", 3600)
BACKUP_JOB_PROGRESS_INTERVAL = float(env_int("BACKUP_JOB_PROGRESS_INTERVAL_MS", 1000)) / 1000
