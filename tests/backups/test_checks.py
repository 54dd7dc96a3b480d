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
