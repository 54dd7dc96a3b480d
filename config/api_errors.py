"""Django's own error pages, as JSON under ``/api/``.

A client of the API gets ``{"error": ...}`` whatever stops a request before
DRF sees it (an id that is not a number, a request too large to parse, a
crash); the admin and other pages keep Django's HTML pages.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults


def _for_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    if _for_api(request):
        return JsonResponse({"error": "Petición incorrecta."}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _for_api(request):
        return JsonResponse({"error": "No tienes permiso para esta acción."}, status=403)
    return defaults.permission_denied(request, exception)


def not_found(request, exception=None):
    if _for_api(request):
        return JsonResponse({"error": "No encontrado."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _for_api(request):
        return JsonResponse({"error": "Error interno del servidor."}, status=500)
    return defaults.server_error(request)
