"""The page's forms: sign-in, schedule, and the confirmations of destructive actions."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils import timezone

from apps.backups_page.access import password_problem
from apps.tenants.models import Clinic

SCHEDULE_CHOICES = [
    (Clinic.BackupSchedule.DISABLED, "Desactivado"),
    (Clinic.BackupSchedule.DAILY, "Diario (cada día a partir de las 00:00)"),
    (Clinic.BackupSchedule.WEEKLY, "Semanal (cada domingo a partir de las 00:00)"),
    (Clinic.BackupSchedule.SCHEDULED, "Una sola vez, en la fecha y hora indicadas"),
]


class SignInForm(AuthenticationForm):
    """Django's sign-in form (it calls ``authenticate(request=...)``), by email."""

    username = forms.EmailField(
        label="Correo electrónico",
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip().lower()


class ScheduleForm(forms.Form):
    backup_schedule = forms.ChoiceField(label="Frecuencia", choices=SCHEDULE_CHOICES)
    # Read in the clinic's time zone (the view activates it).
    next_scheduled_backup = forms.DateTimeField(
        label="Fecha y hora (solo para «una sola vez»)",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": "Indica una fecha y hora válidas."},
    )

    def clean(self):
        values = super().clean()
        schedule = values.get("backup_schedule")
        when = values.get("next_scheduled_backup")
        if schedule == Clinic.BackupSchedule.SCHEDULED:
            if when is None and "next_scheduled_backup" not in self.errors:
                self.add_error("next_scheduled_backup", "Indica la fecha y hora del backup.")
            elif when is not None and when <= timezone.now():
                self.add_error("next_scheduled_backup", "La fecha y hora deben ser futuras.")
        else:
            values["next_scheduled_backup"] = None  # only a one-off uses the date
        return values


class DestructiveConfirmForm(forms.Form):
    """The administrator's password again: a restore or a deletion needs it."""

    password = forms.CharField(
        label="Tu contraseña",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        self.clinic = request.tenant

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        problem = password_problem(self.request, password=password)
        if problem:
            raise forms.ValidationError(problem)
        return password


class RestoreConfirmForm(DestructiveConfirmForm):
    confirm_name = forms.CharField(label="Escribe el nombre de la clínica para confirmar", strip=True)

    field_order = ["confirm_name", "password"]

    def clean_confirm_name(self) -> str:
        typed = self.cleaned_data["confirm_name"]
        if " ".join(typed.split()).casefold() != " ".join(self.clinic.name.split()).casefold():
            raise forms.ValidationError(f"No coincide: escribe exactamente «{self.clinic.name}».")
        return typed


class UploadRestoreForm(RestoreConfirmForm):
    file = forms.FileField(
        label="Archivo del backup (.sql o .json descargado de esta clínica)",
        widget=forms.ClearableFileInput(attrs={"accept": ".sql,.json"}),
    )

    field_order = ["file", "confirm_name", "password"]
