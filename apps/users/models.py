"""Clinic users. Each clinic schema has its own users table; the public schema's
holds platform staff only."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields):
        if not email:
            raise ValueError("El email es obligatorio.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields):
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        fields.setdefault("role", User.Role.CLINIC_ADMIN)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    class Role(models.TextChoices):
        CLINIC_ADMIN = "clinic_admin", "Administrador de clínica"
        PROFESSIONAL = "professional", "Profesional"
        RECEPTIONIST = "receptionist", "Recepción"
        PATIENT = "patient", "Paciente"

    email = models.EmailField("correo electrónico", unique=True)
    first_name = models.CharField("nombre", max_length=150, blank=True)
    last_name = models.CharField("apellidos", max_length=150, blank=True)
    role = models.CharField("rol", max_length=20, choices=Role.choices, default=Role.PATIENT)
    phone = models.CharField("teléfono", max_length=32, blank=True)
    is_active = models.BooleanField("activo", default=True)
    is_staff = models.BooleanField("acceso al admin de la plataforma", default=False)
    date_joined = models.DateTimeField("alta", default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = "usuario"
        verbose_name_plural = "usuarios"

    def __str__(self) -> str:
        return self.email

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
