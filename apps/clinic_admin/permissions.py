from rest_framework import permissions

from apps.users.models import User


class IsClinicAdmin(permissions.BasePermission):
    """Only this clinic's administrators (role ``clinic_admin``)."""

    message = "Solo el administrador de la clínica puede hacer esto."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.role == User.Role.CLINIC_ADMIN)
