"""Tokens that can be revoked: rotation, logout, password change, deactivation,
restores (to the microsecond). Still bound to their clinic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from django.conf import settings
from django_tenants.utils import schema_context

from apps.backups.models import BackupRestore
from apps.users.authentication import AUTH_TIME_CLAIM
from apps.users.models import User
from tests.conftest import PASSWORD

HISTORY_URL = "/api/backups/history/"


def sign_in(fixture, user=None) -> dict:
    user = user or fixture.admin
    response = fixture.client().post("/api/auth/token/", {"email": user.email, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def refresh(fixture, token: str):
    return fixture.client().post("/api/auth/token/refresh/", {"refresh": token}, format="json")


def get_with(fixture, access: str, url: str = HISTORY_URL):
    client = fixture.client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get(url)


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_refresh_rotates_and_the_rotated_away_token_gets_401(alfa):
    first = sign_in(alfa)
    rotated = refresh(alfa, first["refresh"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh"] != first["refresh"]
    assert get_with(alfa, second["access"]).status_code == 200
    replay = refresh(alfa, first["refresh"])
    assert replay.status_code == 401
    assert refresh(alfa, second["refresh"]).status_code == 200
    # The sign-in time travels with the session, not the refresh time.
    assert claims(second["access"])[AUTH_TIME_CLAIM] == claims(first["access"])[AUTH_TIME_CLAIM]


def test_logout_revokes_the_refresh_token(alfa):
    tokens = sign_in(alfa)
    other_session = sign_in(alfa)
    response = alfa.client().post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"message": "Sesión cerrada."}
    assert refresh(alfa, tokens["refresh"]).status_code == 401
    again = alfa.client().post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401
    assert "revocó" in again.json()["error"]
    assert refresh(alfa, other_session["refresh"]).status_code == 200  # only that session ended


def test_logout_everywhere_revokes_every_session_of_the_user_only(alfa):
    first, second = sign_in(alfa), sign_in(alfa)
    colleague = sign_in(alfa, alfa.staff)
    response = alfa.client().post("/api/auth/logout/", {"refresh": first["refresh"], "everywhere": True}, format="json")
    assert response.status_code == 200
    assert refresh(alfa, first["refresh"]).status_code == 401
    assert refresh(alfa, second["refresh"]).status_code == 401
    assert refresh(alfa, colleague["refresh"]).status_code == 200


def test_logout_with_another_clinics_token_is_refused_and_revokes_nothing(alfa, beta):
    tokens = sign_in(alfa)
    assert beta.client().post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json").status_code == 401
    assert refresh(alfa, tokens["refresh"]).status_code == 200
    assert alfa.client().post("/api/auth/logout/", {}, format="json").status_code == 400


def test_a_password_change_revokes_access_and_refresh_tokens(alfa):
    tokens = sign_in(alfa)
    assert get_with(alfa, tokens["access"]).status_code == 200
    with schema_context("alfa"):
        admin = User.objects.get(pk=alfa.admin.pk)
        admin.set_password("otra-clave-distinta-456")
        admin.save()
    assert get_with(alfa, tokens["access"]).status_code == 401
    assert refresh(alfa, tokens["refresh"]).status_code == 401


def test_deactivation_revokes_tokens_for_good(alfa):
    tokens = sign_in(alfa)
    with schema_context("alfa"):
        admin = User.objects.get(pk=alfa.admin.pk)
        admin.is_active = False
        admin.save()
        assert get_with(alfa, tokens["access"]).status_code == 401
        admin.is_active = True
        admin.save()  # reactivated: the old session does not come back
    assert refresh(alfa, tokens["refresh"]).status_code == 401
    assert refresh(alfa, sign_in(alfa)["refresh"]).status_code == 200


def test_a_deleted_users_tokens_get_401(alfa):
    with schema_context("alfa"):
        user = User.objects.create_user("baja@alfa.com", PASSWORD, role=User.Role.CLINIC_ADMIN)
    tokens = sign_in(alfa, user)
    with schema_context("alfa"):
        User.objects.filter(pk=user.pk).delete()
    assert get_with(alfa, tokens["access"]).status_code == 401
    refused = refresh(alfa, tokens["refresh"])
    assert refused.status_code == 401
    assert refused.json() == {"error": "El usuario del token no existe."}


def test_other_saves_revoke_nothing(alfa):
    tokens = sign_in(alfa)
    with schema_context("alfa"):
        admin = User.objects.get(pk=alfa.admin.pk)
        admin.phone = "+34 600 000 000"
        admin.save()
    assert refresh(alfa, tokens["refresh"]).status_code == 200


def _restored_at(moment) -> None:
    with schema_context("alfa"):
        BackupRestore.objects.create(
            source=BackupRestore.Source.UPLOAD, status=BackupRestore.Status.SUCCEEDED, finished_at=moment
        )


def test_a_token_from_the_same_second_just_before_a_restore_is_refused(alfa):
    """No sleeping: the restore is recorded one microsecond after the sign-in."""
    tokens = sign_in(alfa)
    signed_in_us = claims(tokens["access"])[AUTH_TIME_CLAIM]
    restored = datetime.fromtimestamp(0, tz=UTC) + timedelta(microseconds=signed_in_us + 1)
    assert int(restored.timestamp()) == claims(tokens["access"])["iat"]  # the same second: the old gap
    _restored_at(restored)
    assert get_with(alfa, tokens["access"]).status_code == 401
    assert refresh(alfa, tokens["refresh"]).status_code == 401


def test_a_token_from_the_same_second_just_after_a_restore_works(alfa):
    tokens = sign_in(alfa)
    signed_in_us = claims(tokens["access"])[AUTH_TIME_CLAIM]
    restored = datetime.fromtimestamp(0, tz=UTC) + timedelta(microseconds=signed_in_us - 1)
    _restored_at(restored)
    assert get_with(alfa, tokens["access"]).status_code == 200
    assert refresh(alfa, tokens["refresh"]).status_code == 200


def test_the_blacklist_lives_in_each_clinics_schema(alfa, beta):
    tokens = sign_in(alfa)
    alfa.client().post("/api/auth/logout/", {"refresh": tokens["refresh"]}, format="json")
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

    with schema_context("alfa"):
        assert BlacklistedToken.objects.filter(token__jti=claims(tokens["refresh"])["jti"]).exists()
    with schema_context("beta"):
        assert not BlacklistedToken.objects.exists()
    assert settings.SIMPLE_JWT["ROTATE_REFRESH_TOKENS"]
