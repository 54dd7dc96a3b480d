"""Who may use the page: this clinic's administrators, signed in on this clinic."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from apps.users.models import User
from apps.users.sessions import ENDED_BY_RESTORE


def password_problem(request, *, password: str) -> str | None:
    """Why the signed-in user's password does not confirm a destructive action, if so.

    A restore or a deletion needs the administrator's password again, whatever
    the age of the session. Checked through ``authenticate(request=...)`` so that
    wrong passwords count towards the sign-in lockout (django-axes)."""
    from django.contrib.auth import authenticate

    from apps.users.sign_ins import lockout_message

    checked = authenticate(request=request, email=request.user.email, password=password)
    if getattr(request, "axes_locked_out", False):
        return lockout_message(request)
    if checked is None or checked.pk != request.user.pk:
        return "La contraseña no es correcta."
    return None


def refusal(request, *, title: str, message: str, status: int = 403):
    return render(
        request,
        "backups_page/refused.html",
        {"clinic": request.tenant, "title": title, "message": message},
        status=status,
    )


def clinic_admin_page(view):
    """Signed-in clinic administrators only; the rest get a clear page, never a trace.

    Dates on the page are shown in the clinic's time zone."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        clinic = getattr(request, "tenant", None)
        if clinic is None or clinic.schema_name == settings.PUBLIC_SCHEMA_NAME:
            raise Http404
        if not request.user.is_authenticated:
            if request.session_ended == ENDED_BY_RESTORE:
                return redirect(reverse("backups_page:sign_in") + "?" + urlencode({"motivo": "restauracion"}))
            if request.COOKIES.get(settings.SESSION_COOKIE_NAME) and request.session.session_key is None:
                # A session this clinic does not know: another clinic's, or one that has ended.
                return refusal(
                    request,
                    title="Sesión no válida en esta clínica",
                    message=(
                        f"Esta sesión no pertenece a {clinic.name} (es de otra clínica o ya terminó). "
                        "Inicia sesión con tu cuenta de esta clínica."
                    ),
                )
            if request.session_ended:
                return refusal(
                    request,
                    title="Sesión no válida en esta clínica",
                    message=f"Esta sesión no pertenece a {clinic.name}. Inicia sesión con tu cuenta de esta clínica.",
                )
            return redirect(reverse("backups_page:sign_in") + "?" + urlencode({"next": request.get_full_path()}))
        if request.user.role != User.Role.CLINIC_ADMIN:
            return refusal(
                request,
                title="Acceso solo para administradores",
                message=(
                    "Solo el administrador de la clínica puede ver y gestionar los backups. "
                    f"Tu cuenta ({request.user.email}) no tiene ese permiso."
                ),
            )
        with timezone.override(clinic.time_zone):
            return view(request, *args, **kwargs)

    return wrapper


def clinic_admin_json(view):
    """``clinic_admin_page`` for the page's JSON reads: refusals are JSON too.

    A session ended by a restore says so (``session_ended_by_restore``): the job
    page polling a restore learns from it that the restore finished (a restore
    ends sessions only when it succeeds) and asks to sign in again."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        clinic = getattr(request, "tenant", None)
        if clinic is None or clinic.schema_name == settings.PUBLIC_SCHEMA_NAME:
            raise Http404
        if not request.user.is_authenticated:
            ended_by_restore = request.session_ended == ENDED_BY_RESTORE
            message = (
                "La clínica se restauró y las sesiones anteriores se cerraron: vuelve a iniciar sesión."
                if ended_by_restore
                else "Inicia sesión con tu cuenta de esta clínica."
            )
            body = {
                "error": message,
                "session_ended_by_restore": ended_by_restore,
                "sign_in_url": reverse("backups_page:sign_in")
                + ("?" + urlencode({"motivo": "restauracion"}) if ended_by_restore else ""),
            }
            return JsonResponse(body, status=401)
        if request.user.role != User.Role.CLINIC_ADMIN:
            return JsonResponse({"error": "Solo el administrador de la clínica puede ver las tareas."}, status=403)
        with timezone.override(clinic.time_zone):
            return view(request, *args, **kwargs)

    return wrapper
