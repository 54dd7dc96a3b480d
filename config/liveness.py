"""``GET /healthz``: is this web process up and can it reach its database?

For the platform's health checks (Render's ``healthCheckPath``), which send the
request with whatever host they pick — Render uses one of the service's custom
domains, possibly a clinic's — over plain HTTP inside its network. So this
answers before any other middleware: before the tenant lookup (an unknown host
would be a 404, a clinic's host has no ``/admin/``) and before the HTTPS
redirect. It says nothing about any clinic: ``ok`` or 503.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpResponse

logger = logging.getLogger(__name__)

PATH = "/healthz"


class LivenessMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path != PATH:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as error:
            logger.error("healthz: la base de datos no responde: %s", error)
            return HttpResponse("base de datos no disponible\n", status=503, content_type="text/plain")
        return HttpResponse("ok\n", content_type="text/plain", headers={"Cache-Control": "no-store"})
