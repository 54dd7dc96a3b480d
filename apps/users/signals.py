"""Every token of a user is revoked when their password changes or they are
deactivated, however it happens (API, admin, ``changepassword``, a script)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from apps.users.authentication import now_us
from apps.users.models import User
from apps.users.reauth import SESSION_AUTH_TIME_KEY
from apps.users.services import user_tokens_revoke
from apps.users.sign_ins import account_failures_clear


@receiver(pre_save, sender=User)
def _note_credentials_change(sender, instance: User, raw: bool = False, **kwargs) -> None:
    instance._revoke_tokens = False
    if raw or instance.pk is None:
        return
    before = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if before and (before["password"] != instance.password or (before["is_active"] and not instance.is_active)):
        instance._revoke_tokens = True


@receiver(post_save, sender=User)
def _revoke_tokens_after_credentials_change(sender, instance: User, raw: bool = False, **kwargs) -> None:
    if not raw and getattr(instance, "_revoke_tokens", False):
        user_tokens_revoke(user_id=instance.pk)
        instance._revoke_tokens = False


@receiver(user_logged_in)
def _note_session_sign_in_time(sender, request, user, via_token: bool = False, **kwargs) -> None:
    """A session login (admin, a clinic's HTML page) remembers when, for re-authentication."""
    if not via_token and request is not None and hasattr(request, "session"):
        request.session[SESSION_AUTH_TIME_KEY] = now_us()


@receiver(user_logged_in)
def _clear_the_accounts_failures(sender, request, user, **kwargs) -> None:
    """Any successful sign-in (token, clinic page, admin) clears that account's failures only
    (``AXES_RESET_ON_SUCCESS`` is off: it clears every failure from the address too)."""
    account_failures_clear(username=user.get_username())
