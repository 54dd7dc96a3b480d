"""``manage.py check`` warns about backup keys that would fail on the day they are needed."""

import pyrage

from apps.backups.checks import encryption_keys_check


def check_ids() -> list[str]:
    return [message.id for message in encryption_keys_check(None)]


def test_recipients_that_the_identity_cannot_open_are_a_warning(settings, age_key):
    settings.BACKUP_AGE_RECIPIENTS = [str(pyrage.x25519.Identity.generate().to_public())]
    assert check_ids() == ["backups.W001"]


def test_the_identitys_own_key_among_the_recipients_is_fine(settings, age_key):
    ours = age_key.read_text().split("public key: ")[1].split()[0]
    settings.BACKUP_AGE_RECIPIENTS = [str(pyrage.x25519.Identity.generate().to_public()), ours]
    assert check_ids() == []


def test_recipients_without_an_identity_here_are_a_deliberate_choice(settings):
    settings.BACKUP_AGE_IDENTITY_FILE = ""
    settings.BACKUP_AGE_RECIPIENTS = [str(pyrage.x25519.Identity.generate().to_public())]
    assert check_ids() == []


def test_a_malformed_recipient_or_unreadable_identity_is_an_error(settings, tmp_path):
    settings.BACKUP_AGE_RECIPIENTS = ["age1-no-es-una-clave"]
    assert check_ids() == ["backups.E001"]
    settings.BACKUP_AGE_RECIPIENTS = []
    settings.BACKUP_AGE_IDENTITY_FILE = str(tmp_path / "no-existe.txt")
    assert check_ids() == ["backups.E001"]


def manage_check(tmp_path, **env: str):
    import subprocess
    import sys

    from django.conf import settings

    from tests.support.processes import subprocess_env

    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env=subprocess_env(tmp_path) | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_manage_py_check_runs_the_key_checks(db, tmp_path, age_key):
    """Registered with Django's checks: ``manage.py check`` (and so runserver, migrate,
    deploys) reports them, an error with a failing exit code."""
    malformed = manage_check(tmp_path, BACKUP_AGE_RECIPIENTS="age1-no-es-una-clave")
    assert malformed.returncode != 0 and "backups.E001" in malformed.stderr

    foreign = str(pyrage.x25519.Identity.generate().to_public())
    warned = manage_check(tmp_path, BACKUP_AGE_RECIPIENTS=foreign, BACKUP_AGE_IDENTITY_FILE=str(age_key))
    assert warned.returncode == 0, warned.stderr
    assert "backups.W001" in warned.stderr + warned.stdout

    fine = manage_check(tmp_path, BACKUP_AGE_IDENTITY_FILE=str(age_key))
    assert fine.returncode == 0 and "backups." not in fine.stderr + fine.stdout
