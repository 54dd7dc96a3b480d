"""One error shape under /api/: {"error": "<mensaje>"} (+ "fields" for refused fields), in Spanish."""

import json

import pytest

CONFIG_URL = "/api/admin/config/backup/"
# Words of the libraries' English (or unaccented Spanish) messages that must never reach a user.
NOT_SPANISH = ("Token is", "JSON parse", "not valid", "no es valido", "ningun ", "detail", "credentials", "Method")


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) <= {"error", "fields"} and isinstance(body["error"], str) and body["error"]
    for value in body.get("fields", {}).values():
        assert isinstance(value, str) and value
    text = json.dumps(body, ensure_ascii=False)
    assert not any(word in text for word in NOT_SPANISH), text
    return body


def test_authentication_errors(alfa):
    client = alfa.client()
    body = assert_error_shape(client.post("/api/auth/token/", {"email": alfa.admin.email}, format="json"), 400)
    assert body["fields"] == {"password": "Este campo es requerido."}
    assert_error_shape(client.get(CONFIG_URL), 401)
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    body = assert_error_shape(client.get(CONFIG_URL), 401)
    assert body == {"error": "El token no es válido o ha caducado."}
    body = assert_error_shape(alfa.client().post("/api/auth/token/refresh/", {"refresh": "x"}, format="json"), 401)
    assert body == {"error": "El token no es válido."}
    client.credentials(HTTP_AUTHORIZATION="Basic abc")
    assert_error_shape(client.get(CONFIG_URL), 401)


def test_token_of_another_clinic_keeps_its_own_message(alfa, beta):
    client = beta.client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alfa.token_for(alfa.admin)}")
    assert assert_error_shape(client.get(CONFIG_URL), 401) == {"error": "El token no pertenece a esta clínica."}


def test_permission_and_request_errors(alfa):
    staff = alfa.client()
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {alfa.token_for(alfa.staff)}")
    assert_error_shape(staff.get(CONFIG_URL), 403)

    admin = alfa.admin_client()
    body = assert_error_shape(admin.generic("PATCH", CONFIG_URL, "{no json", content_type="application/json"), 400)
    assert body == {"error": "El cuerpo de la petición está mal formado (JSON o formulario no válido)."}
    assert_error_shape(admin.patch(CONFIG_URL, {"backup_schedule": "daily"}, format="multipart"), 415)
    assert_error_shape(admin.delete(CONFIG_URL), 405)
    assert_error_shape(admin.get(CONFIG_URL, HTTP_ACCEPT="text/csv"), 406)
    assert_error_shape(admin.get("/api/backups/history/999999/download/"), 404)
    assert_error_shape(admin.get("/api/backups/history/abc/download/"), 404)  # Django's 404, before DRF
    assert_error_shape(admin.get("/api/no-existe/"), 404)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"backup_schedule": "hourly"}, {"fields": {"backup_schedule": '"hourly" no es una elección válida.'}}),
        ({"color": "rojo"}, {"fields": {"color": "Campo desconocido."}}),
        ({"time_zone": "UTC"}, {"fields": {"time_zone": "Campo de solo lectura."}}),
        ([1, 2], {"error": "Se esperaba un objeto JSON."}),
    ],
)
def test_validation_errors_name_their_fields(alfa, payload, expected):
    body = assert_error_shape(alfa.admin_client().patch(CONFIG_URL, payload, format="json"), 400)
    for key, value in expected.items():
        assert body[key] == value
    if "fields" in expected:
        assert body["error"] == "Datos no válidos: revisa los campos."


def test_schedule_rule_errors_and_query_parameters(alfa):
    admin = alfa.admin_client()
    body = assert_error_shape(
        admin.patch(
            CONFIG_URL, {"backup_schedule": "daily", "next_scheduled_backup": "2030-01-01T00:00"}, format="json"
        ),
        400,
    )
    assert "scheduled" in body["error"] and "fields" not in body
    body = assert_error_shape(admin.patch(CONFIG_URL, {"next_scheduled_backup": "mañana"}, format="json"), 400)
    assert set(body["fields"]) == {"next_scheduled_backup"}
    body = assert_error_shape(admin.post("/api/backups/create/?download="), 400)
    assert body["fields"] == {"download": "Usa download=true o download=false."}
    body = assert_error_shape(admin.post("/api/backups/restore/", {}, format="json"), 400)
    assert body["fields"] == {"backup_id": "Este campo es requerido."}
    body = assert_error_shape(admin.post("/api/backups/restore/", {"backup_id": 1, "file": "x"}, format="json"), 400)
    assert body == {"error": "Indica 'backup_id' o sube un archivo en 'file' (uno de los dos)."}
    body = assert_error_shape(admin.post("/api/backups/restore/", {"backup_id": "1"}, format="multipart"), 400)
    assert body["fields"] == {"file": "No se envió ningún archivo."}


def test_the_openapi_schema_declares_the_one_error_shape_and_spanish_descriptions(alfa):
    schema = alfa.client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["components"]["schemas"]["Error"]["required"] == ["error"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation["description"] and "The " not in operation["description"], (method, path)
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):
                    [content] = response["content"].values()
                    assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (method, path, code)
