"""Guessing passwords stops: after AUTH_LOCKOUT_FAILURES failures for one account
or from one address, 429 in Spanish for a cool-down that grows; shared by every
web process (two real server processes here); every sign-in recorded per clinic."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from tests.backups.monitoring.test_fleet_admin import platform  # noqa: F401 (fixture)
from tests.conftest import PASSWORD
from tests.support.processes import subprocess_env

TOKEN_URL = "/api/auth/token/"
BASE_DIR = Path(settings.BASE_DIR)


def attempt(fixture, email: str, password: str, address: str = "203.0.113.7"):
    return fixture.client().post(TOKEN_URL, {"email": email, "password": password}, format="json", REMOTE_ADDR=address)


def age_attempts(schema: str, by: timedelta) -> None:
    """The cool-down passes: the failures are moved back in time (no sleeping)."""
    with schema_context(schema):
        for model in (AccessAttempt, AccessFailureLog):
            for row in model.objects.all():
                model.objects.filter(pk=row.pk).update(attempt_time=row.attempt_time - by)


def test_guessing_stops_after_the_threshold_and_works_after_the_cool_down(alfa, settings):
    email = alfa.admin.email
    statuses = [attempt(alfa, email, f"intento-{n}").status_code for n in range(settings.AUTH_LOCKOUT_FAILURES)]
    assert statuses[:-1] == [401] * (settings.AUTH_LOCKOUT_FAILURES - 1)
    assert statuses[-1] == 429  # the failure that reaches the limit
    locked = attempt(alfa, email, PASSWORD)  # even the right password
    assert locked.status_code == 429
    assert locked.json()["error"].startswith("Demasiados intentos de inicio de sesión fallidos")
    assert "15 minutos" in locked.json()["error"]
    assert locked["Retry-After"] == str(15 * 60)
    assert "access" not in locked.json()

    age_attempts("alfa", timedelta(minutes=16))
    assert attempt(alfa, email, PASSWORD).status_code == 200


def test_the_next_lockout_lasts_twice_as_long(alfa, settings):
    email = alfa.admin.email
    for _ in range(settings.AUTH_LOCKOUT_FAILURES):
        attempt(alfa, email, "mal")
    age_attempts("alfa", timedelta(minutes=16))
    for _ in range(settings.AUTH_LOCKOUT_FAILURES):
        attempt(alfa, email, "mal")
    second = attempt(alfa, email, PASSWORD)
    assert second.status_code == 429
    assert "30 minutos" in second.json()["error"]
    age_attempts("alfa", timedelta(minutes=16))
    assert attempt(alfa, email, PASSWORD).status_code == 429  # 16 minutes are not 30
    age_attempts("alfa", timedelta(minutes=15))
    assert attempt(alfa, email, PASSWORD).status_code == 200


def test_one_address_trying_many_accounts_is_stopped(alfa, settings):
    for n in range(settings.AUTH_LOCKOUT_ADDRESS_FAILURES - 1):
        assert attempt(alfa, f"nadie{n}@alfa.com", "mal", address="198.51.100.9").status_code == 401
    assert attempt(alfa, "nadie-mas@alfa.com", "mal", address="198.51.100.9").status_code == 429
    assert attempt(alfa, alfa.admin.email, PASSWORD, address="198.51.100.9").status_code == 429
    # The account itself was not attacked: from elsewhere it signs in.
    assert attempt(alfa, alfa.admin.email, PASSWORD, address="198.51.100.10").status_code == 200


def test_an_office_of_colleagues_mistyping_once_each_is_not_locked_out(alfa, settings):
    """Staff share their office's address: more colleagues than an account's limit
    each mistype once, and the next one still signs in."""
    office = "198.51.100.40"
    assert settings.AUTH_LOCKOUT_ADDRESS_FAILURES > settings.AUTH_LOCKOUT_FAILURES
    for n in range(settings.AUTH_LOCKOUT_FAILURES + 2):
        assert attempt(alfa, f"colega{n}@alfa.com", "tecleo-mal", address=office).status_code == 401
    assert attempt(alfa, alfa.staff.email, PASSWORD, address=office).status_code == 200


def test_signing_in_as_another_account_between_guesses_does_not_reset_them(alfa, settings):
    """A colleague who knows their own password guesses the administrator's from the same
    address, signing in as themself between guesses: the guesses still add up."""
    address = "198.51.100.20"
    for n in range(settings.AUTH_LOCKOUT_FAILURES - 1):
        assert attempt(alfa, alfa.admin.email, f"intento-{n}", address=address).status_code == 401
        assert attempt(alfa, alfa.staff.email, PASSWORD, address=address).status_code == 200
    assert attempt(alfa, alfa.admin.email, "otro-intento", address=address).status_code == 429
    assert attempt(alfa, alfa.admin.email, PASSWORD, address="198.51.100.21").status_code == 429
    with schema_context("alfa"):
        assert AccessFailureLog.objects.filter(username=alfa.admin.email).count() == settings.AUTH_LOCKOUT_FAILURES


def test_a_successful_sign_in_clears_that_accounts_own_failures(alfa, settings):
    address = "198.51.100.30"
    for _ in range(settings.AUTH_LOCKOUT_FAILURES - 1):
        attempt(alfa, alfa.admin.email, "mal", address=address)
    assert attempt(alfa, alfa.admin.email, PASSWORD, address=address).status_code == 200
    for _ in range(settings.AUTH_LOCKOUT_FAILURES - 1):  # a new count: no lockout
        assert attempt(alfa, alfa.admin.email, "mal", address="198.51.100.31").status_code == 401
    assert attempt(alfa, alfa.admin.email, PASSWORD, address="198.51.100.31").status_code == 200


def test_the_clinic_pages_sign_in_is_protected_too(alfa, settings):
    from django.test import Client

    page = Client(HTTP_HOST=alfa.domain)
    email, address = alfa.admin.email, "192.0.2.60"
    for n in range(settings.AUTH_LOCKOUT_FAILURES - 1):
        wrong = page.post("/backups/entrar/", {"username": email, "password": f"mal-{n}"}, REMOTE_ADDR=address)
        assert wrong.status_code == 200  # the form again, with its error
    page.post("/backups/entrar/", {"username": email, "password": "mal"}, REMOTE_ADDR=address)
    locked = page.post("/backups/entrar/", {"username": email, "password": PASSWORD}, REMOTE_ADDR=address)
    assert locked.status_code == 429
    assert "Demasiados intentos de inicio de sesión fallidos" in locked.content.decode()
    assert locked["Retry-After"] == str(settings.AUTH_LOCKOUT_MINUTES * 60)
    assert page.get("/backups/").status_code == 302  # not signed in

    age_attempts("alfa", timedelta(minutes=settings.AUTH_LOCKOUT_MINUTES + 1))
    signed_in = page.post("/backups/entrar/", {"username": email, "password": PASSWORD}, REMOTE_ADDR=address)
    assert signed_in.status_code == 302 and signed_in["Location"] == "/backups/"
    assert page.get("/backups/").status_code == 200


def test_a_lockout_in_one_clinic_does_not_lock_the_same_email_in_another(alfa, beta, settings):
    for _ in range(settings.AUTH_LOCKOUT_FAILURES):
        attempt(alfa, alfa.admin.email, "mal", address="192.0.2.1")
    assert attempt(alfa, alfa.admin.email, PASSWORD, address="192.0.2.2").status_code == 429
    with schema_context("beta"):
        assert not AccessFailureLog.objects.exists()


def test_the_admin_sign_in_is_protected_too(platform, settings):  # noqa: F811
    """The Django admin lives on the platform's domain only; its sign-in is counted the same way."""
    client, operator = platform
    try:
        for _ in range(settings.AUTH_LOCKOUT_FAILURES):
            client.post("/admin/login/", {"username": operator.email, "password": "mal"}, REMOTE_ADDR="192.0.2.50")
        response = client.post(
            "/admin/login/", {"username": operator.email, "password": "clave-operador-123"}, REMOTE_ADDR="192.0.2.50"
        )
        assert response.status_code == 429
        assert "Demasiados intentos" in response.content.decode()
    finally:  # committed in public: later tests must not find this lockout
        connection.set_schema_to_public()
        for model in (AccessAttempt, AccessFailureLog, AccessLog):
            model.objects.all().delete()


def test_sign_ins_are_recorded_per_clinic_and_shown_to_its_admin(alfa, beta, settings):
    settings.NUM_PROXIES = 1
    client = alfa.client()
    client.post(
        TOKEN_URL,
        {"email": alfa.admin.email, "password": "mal"},
        format="json",
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="203.0.113.77",
        HTTP_USER_AGENT="Navegador de prueba",
    )
    admin = alfa.admin_client()  # a successful sign-in, from 127.0.0.1
    entries = admin.get("/api/auth/sign-ins/").json()
    assert [(e["email"], e["succeeded"]) for e in entries[:2]] == [
        (alfa.admin.email, True),
        (alfa.admin.email, False),
    ]
    failed = entries[1]
    assert (failed["ip_address"], failed["user_agent"], failed["path"]) == (
        "203.0.113.77",
        "Navegador de prueba",
        TOKEN_URL,
    )
    assert beta.admin_client().get("/api/auth/sign-ins/").json()[0]["email"] == beta.admin.email
    assert all(e["email"] != alfa.admin.email for e in beta.admin_client().get("/api/auth/sign-ins/").json())
    staff = alfa.client()
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {alfa.token_for(alfa.staff)}")
    assert staff.get("/api/auth/sign-ins/").status_code == 403


def test_operators_read_the_sign_ins_with_a_command(alfa, capsys):
    from django.core.management import call_command

    attempt(alfa, alfa.admin.email, "mal", address="192.0.2.99")
    call_command("sign_in_log", "alfa")
    out = capsys.readouterr().out
    assert alfa.admin.email in out and "192.0.2.99" in out and "fallido" in out


# Two real server processes sharing the lockout -----------------------------------


SERVER = """
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from config.wsgi import application

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

server = make_server("127.0.0.1", 0, application, handler_class=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"""


def sign_in_records_clear() -> None:
    connection.set_schema_to_public()
    for schema in ("alfa", "beta"):
        with schema_context(schema):
            AccessAttempt.objects.all().delete()
            AccessFailureLog.objects.all().delete()
            AccessLog.objects.all().delete()


@pytest.fixture
def two_servers(committed, tmp_path):
    sign_in_records_clear()  # committed tests before this one signed in
    env = subprocess_env(tmp_path)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SERVER], cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    try:
        ports = [int(process.stdout.readline()) for process in processes]
        assert len({process.pid for process in processes}) == 2
        yield ports
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        sign_in_records_clear()


def post_token(port: int, domain: str, email: str, password: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(
        "POST",
        TOKEN_URL,
        body=json.dumps({"email": email, "password": password}),
        headers={"Host": domain, "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    body = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, body


def test_the_lockout_holds_across_two_server_processes(two_servers, committed):
    alfa = committed["alfa"]
    limit = settings.AUTH_LOCKOUT_FAILURES
    # Failures alternate between the processes: no process alone reaches the limit.
    statuses = [
        post_token(two_servers[n % 2], alfa.domain, alfa.admin.email, f"intento-{n}")[0] for n in range(limit - 1)
    ]
    assert statuses == [401] * (limit - 1)
    assert post_token(two_servers[0], alfa.domain, alfa.admin.email, "otro-intento")[0] == 429
    for port in two_servers:
        status, body = post_token(port, alfa.domain, alfa.admin.email, PASSWORD)
        assert status == 429
        assert "Demasiados intentos" in body["error"]
    # The other clinic's admin is not locked out by this.
    beta = committed["beta"]
    assert post_token(two_servers[1], beta.domain, beta.admin.email, PASSWORD)[0] == 200

    age_attempts("alfa", timedelta(minutes=16))
    status, body = post_token(two_servers[1], alfa.domain, alfa.admin.email, PASSWORD)
    assert status == 200 and body["access"]
    with schema_context("alfa"):
        assert AccessFailureLog.objects.count() == limit
        assert AccessLog.objects.filter(username=alfa.admin.email).count() == 1
