"""JWT auth is bound to the clinic that issued the token."""

CONFIG_URL = "/api/admin/config/backup/"


def test_admin_token_works_on_its_own_clinic(alfa):
    response = alfa.admin_client().get(CONFIG_URL)
    assert response.status_code == 200
    assert response.json()["backup_schedule"] == "disabled"


def test_token_from_one_clinic_is_refused_by_another_even_with_same_user_id(alfa, beta):
    # Separate schemas, separate sequences: both admins have the same id.
    assert alfa.admin.pk == beta.admin.pk
    token = alfa.token_for(alfa.admin)
    client = beta.client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get(CONFIG_URL)
    assert response.status_code == 401


def test_refresh_token_from_one_clinic_is_refused_by_another(alfa, beta):
    tokens = (
        alfa.client()
        .post("/api/auth/token/", {"email": alfa.admin.email, "password": "clave-de-prueba-123"}, format="json")
        .json()
    )
    assert alfa.client().post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}).status_code == 200
    assert beta.client().post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}).status_code == 401


def test_wrong_password_gets_401_in_spanish(alfa):
    response = alfa.client().post("/api/auth/token/", {"email": alfa.admin.email, "password": "x"}, format="json")
    assert response.status_code == 401
    assert response.json() == {"error": "Correo o contraseña incorrectos, o la cuenta no está activa."}


def test_unauthenticated_request_gets_401(alfa):
    response = alfa.client().get(CONFIG_URL)
    assert response.status_code == 401
    assert response.json() == {"error": "Falta el token: envía la cabecera 'Authorization: Bearer <token>'."}


def test_non_admin_user_gets_403(alfa):
    client = alfa.client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alfa.token_for(alfa.staff)}")
    assert client.get(CONFIG_URL).status_code == 403


def test_garbage_token_gets_401(alfa):
    client = alfa.client()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert client.get(CONFIG_URL).status_code == 401
