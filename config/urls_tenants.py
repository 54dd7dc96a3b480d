"""URLs served on a clinic's own domain (``<schema>.localhost`` in the demo)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

# Registers the OpenAPI description of our JWT. Here, not in an AppConfig: drf-spectacular
# is heavy (~70 ms, ~10 MB) and commands such as backup_clinics never need it.
from apps.users import schema  # noqa: F401

# No /admin/ here: the Django admin is the platform's, on its own (public) domain only.
urlpatterns = [
    path("api/auth/", include("apps.users.urls")),
    path("api/admin/", include("apps.clinic_admin.urls")),
    path("api/backups/", include("apps.backups.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api_docs"),
    path("backups/", include("apps.backups_page.urls")),
]

handler400 = "config.api_errors.bad_request"
handler403 = "config.api_errors.permission_denied"
handler404 = "config.api_errors.not_found"
handler500 = "config.api_errors.server_error"
