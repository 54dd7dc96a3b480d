"""The one error shape of the API, and the one place that makes it.

Every error under ``/api/`` is ``{"error": "<mensaje>"}``, plus
``"fields": {"<campo>": "<mensaje>"}`` when input was refused field by field.
Messages are Spanish, for the clinic admin who reads them. Two doors lead here:

- ``api_exception_handler`` (DRF's ``EXCEPTION_HANDLER``): whatever a view
  raises — DRF's and simplejwt's exceptions, ``ValidationError`` in any of its
  shapes, the ``BackupError`` family, a missing object, missing configuration;
- ``bad_request``/``permission_denied``/``not_found``/``server_error`` (Django's
  ``handler4xx/500``): what stops a request before DRF sees it (an unknown URL,
  a request too large to parse, a crash). The admin and other pages keep
  Django's HTML pages.

A new endpoint gets this for free: raise ``ValidationError({"campo": "…"})``,
``ValidationError({"error": "…"})``, a DRF exception or a ``BackupError``;
never build an error ``Response`` by hand.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist
from django.http import JsonResponse
from django.utils.translation import gettext
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

INVALID_INPUT = "Datos no válidos: revisa los campos."
# Keys of a ValidationError that are about the request as a whole, not one field.
GENERAL_KEYS = ("error", "non_field_errors", "detail")

# DRF's own exceptions, when raised with their default text (DRF's Spanish
# catalogue is partial and terse for a clinic admin).
_BY_CODE = {
    "parse_error": "El cuerpo de la petición está mal formado (JSON o formulario no válido).",
    "authentication_failed": "No se pudo autenticar: credenciales incorrectas.",
    "not_authenticated": "Falta el token: envía la cabecera 'Authorization: Bearer <token>'.",
    "permission_denied": "No tienes permiso para esta acción.",
    "not_found": "No encontrado.",
    "method_not_allowed": "Método no permitido en esta dirección.",
    "not_acceptable": "No se puede responder en el formato pedido (cabecera Accept).",
    "unsupported_media_type": "Tipo de contenido no admitido en esta dirección.",
    "throttled": "Demasiadas peticiones: espera un momento y vuelve a intentarlo.",
}

# simplejwt's and DRF's messages that reach users untranslated or without accents
# (their Spanish catalogues have fuzzy entries): English text → ours.
_LIBRARY_MESSAGES = {
    "Authorization header must contain two space-delimited values": (
        "La cabecera Authorization debe ser 'Bearer <token>'."
    ),
    "Given token not valid for any token type": "El token no es válido o ha caducado.",
    "Token contained no recognizable user identification": "El token no identifica a ningún usuario.",
    "User not found": "El usuario del token no existe.",
    "User is inactive": "El usuario está desactivado.",
    "The user's password has been changed.": "La contraseña del usuario cambió: vuelve a iniciar sesión.",
    "Token is invalid": "El token no es válido.",
    "Token is expired": "El token ha caducado.",
    "Token is invalid or expired": "El token no es válido o ha caducado.",
    "Token is blacklisted": "El token fue revocado.",
    "Token has no id": "El token no es válido.",
    "Token has no type": "El token no es válido.",
    "Token has wrong type": "El token no es del tipo esperado.",
    "No active account found with the given credentials": (
        "Correo o contraseña incorrectos, o la cuenta no está activa."
    ),
    "No active account found for the given token.": "El token no corresponde a ninguna cuenta activa.",
}


def error_body(message: str, fields: dict[str, str] | None = None) -> dict:
    """The API's error body."""
    body = {"error": message}
    if fields:
        body["fields"] = fields
    return body


def _spanish(text: str) -> str:
    for english, spanish in _LIBRARY_MESSAGES.items():
        if text in (english, gettext(english)):
            return spanish
    return text


def _first_text(value) -> str:
    """One message from a DRF detail (string, list or nested dict)."""
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_first_text(item)}" for key, item in value.items())
    if isinstance(value, list | tuple):
        return " ".join(_first_text(item) for item in value)
    return _spanish(str(value))


def _validation_body(detail) -> dict:
    if not isinstance(detail, dict):  # ValidationError("…") or a list of messages
        return error_body(_first_text(detail) or INVALID_INPUT)
    general = [_first_text(detail[key]) for key in GENERAL_KEYS if key in detail]
    fields = {str(key): _first_text(value) for key, value in detail.items() if key not in GENERAL_KEYS}
    return error_body(" ".join(general) or INVALID_INPUT, fields)


def _api_exception_body(exc: exceptions.APIException) -> dict:
    if isinstance(exc, exceptions.ValidationError):
        return _validation_body(exc.detail)
    detail = exc.detail
    if isinstance(detail, dict):  # simplejwt: {"detail": …, "code": …, "messages": […]}; ours: {"error": …}
        detail = detail.get("detail") or detail.get("error") or ""
    text = _first_text(detail)
    code = getattr(exc, "default_code", "")
    if code in _BY_CODE and (not text or text in (str(exc.default_detail), gettext(str(exc.default_detail)))):
        text = _BY_CODE[code]
    elif isinstance(exc, exceptions.ParseError) and text.startswith(("JSON parse error", "Multipart form parse")):
        text = _BY_CODE["parse_error"]
    return error_body(text or _BY_CODE.get(code, "Petición incorrecta."))


def api_exception_handler(exc, context):
    """DRF's ``EXCEPTION_HANDLER``: every error a view raises, in the one shape."""
    from apps.backups.errors import BackupError

    if isinstance(exc, BackupError):
        if exc.status_code >= 500:
            logger.error("Error de backup en %s: %s", context["request"].path, exc)
        # Server faults may carry internal detail: the log has it, the clinic admin a plain message.
        return Response(error_body(exc.public_message or str(exc)), status=exc.status_code)
    if isinstance(exc, ObjectDoesNotExist):
        return Response(error_body("No encontrado."), status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, ImproperlyConfigured):
        logger.error("Configuración incompleta: %s", exc)
        return Response(
            error_body("El sistema de backups no está bien configurado; avisa al operador de la plataforma."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
    response = drf_exception_handler(exc, context)  # Http404/PermissionDenied become DRF's, headers set
    if response is None:
        return None  # a crash: Django's handler500 below answers
    if isinstance(exc, exceptions.APIException):
        response.data = _api_exception_body(exc)
    return response


def _for_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    if _for_api(request):
        return JsonResponse(error_body("Petición incorrecta."), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _for_api(request):
        return JsonResponse(error_body(_BY_CODE["permission_denied"]), status=403)
    return defaults.permission_denied(request, exception)


def not_found(request, exception=None):
    if _for_api(request):
        return JsonResponse(error_body("No encontrado."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _for_api(request):
        return JsonResponse(error_body("Error interno del servidor."), status=500)
    return defaults.server_error(request)
