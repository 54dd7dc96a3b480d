"""Production settings pass ``check --deploy`` with no warnings; local runs stay
on plain HTTP; Django's standard password validators are on."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from apps.users.models import User
from tests.support.processes import subprocess_env

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "psico-api.onrender.com,.psicoadmin.com",
    "NUM_PROXIES": "1",
}
SHOW = (
    "from django.conf import settings as s; import json; print(json.dumps({k: getattr(s, k, None) for k in "
    "('SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
    "'SECURE_PROXY_SSL_HEADER')}))"
)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def shown(env: dict[str, str]) -> dict:
    result = run(["manage.py", "shell", "-c", SHOW], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_production_settings(clinics, tmp_path):
    env = subprocess_env(tmp_path) | PRODUCTION
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    values = shown(env)
    assert values["SECURE_SSL_REDIRECT"] and values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_the_issues_four_warnings_come_back_if_https_is_switched_off(clinics, tmp_path):
    env = subprocess_env(tmp_path) | PRODUCTION | {"DJANGO_HTTPS": "false"}
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 1
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_the_deploy_check_says_why_https_is_off_with_local_host_names(clinics, tmp_path):
    """The issue's own try: DJANGO_DEBUG=false and a real key, host names left local."""
    env = subprocess_env(tmp_path) | {k: v for k, v in PRODUCTION.items() if k != "DJANGO_ALLOWED_HOSTS"}
    result = run(["manage.py", "check", "--deploy"], env)
    assert "config.I001" in result.stdout + result.stderr
    assert "DJANGO_ALLOWED_HOSTS" in result.stdout + result.stderr
    production = run(["manage.py", "check", "--deploy"], subprocess_env(tmp_path) | PRODUCTION)
    assert "config.I001" not in production.stdout + production.stderr


def test_local_runs_stay_on_plain_http(clinics, tmp_path):
    env = {k: v for k, v in subprocess_env(tmp_path).items() if not k.startswith("DJANGO_")}
    values = shown(env)  # make demo / make serve: DJANGO_DEBUG unset, local host names
    assert not values["SECURE_SSL_REDIRECT"] and not values["SESSION_COOKIE_SECURE"]
    assert not values["SECURE_HSTS_SECONDS"]


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("corta", "demasiado corta"),
        ("password123", "demasiado común"),
        ("8472910364", "completamente numérica"),
        ("admin@alfa.com1", "demasiado similar"),
    ],
)
def test_django_standard_password_validators(password, reason):
    user = User(email="admin@alfa.com", first_name="Alfa")
    with pytest.raises(ValidationError) as refused:
        validate_password(password, user)
    assert reason in " ".join(refused.value.messages)


def test_the_demo_and_test_passwords_pass_the_validators(settings):
    from tests.conftest import PASSWORD

    validate_password(settings.DEMO_PASSWORD, User(email="admin@bienestar.com"))
    validate_password(PASSWORD, User(email="admin@alfa.com"))
