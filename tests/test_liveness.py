"""``/healthz`` answers the platform's health check whatever host it sends and
before the HTTPS redirect, and says nothing about any clinic."""

from __future__ import annotations

from django.test import Client


def test_healthz_answers_any_host_a_clinics_and_an_unknown_one(alfa):
    for host in (alfa.domain, "otro-dominio-cualquiera.example"):
        response = Client(HTTP_HOST=host).get("/healthz")
        assert (response.status_code, response.content, response["Cache-Control"]) == (200, b"ok\n", "no-store")
    # The clinic's host has no /admin/: the old health check path was a 404 there.
    assert Client(HTTP_HOST=alfa.domain).get("/admin/login/").status_code == 404


def test_healthz_is_not_redirected_to_https(alfa, settings):
    settings.SECURE_SSL_REDIRECT = True
    client = Client(HTTP_HOST=alfa.domain)
    assert client.get("/api/backups/history/").status_code == 301
    assert client.get("/healthz").status_code == 200


def test_healthz_only_reads(alfa):
    response = Client(HTTP_HOST=alfa.domain).post("/healthz")
    assert (response.status_code, response["Allow"]) == (405, "GET, HEAD")
