"""Changing users' state: revoking their tokens."""

from __future__ import annotations

from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken


def user_tokens_revoke(*, user_id: int) -> int:
    """Blacklist every refresh token of the user in the current clinic; returns
    how many were still usable. Access tokens end through their own checks
    (password hash claim, ``is_active``) or within ``JWT_ACCESS_MINUTES``."""
    pending = OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True)
    revoked = 0
    for token in pending:
        _, created = BlacklistedToken.objects.get_or_create(token=token)
        revoked += created
    return revoked
