from django.conf import settings
from django.db import models


class PatientProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="patient_profile")
    birth_date = models.DateField(null=True, blank=True)
    national_id = models.CharField(max_length=32, blank=True)
    address = models.TextField(blank=True)
    emergency_contact = models.JSONField(default=dict, blank=True)
    intake_notes = models.TextField(blank=True)

    class Meta:
        verbose_name = "perfil de paciente"
        verbose_name_plural = "perfiles de paciente"

    def __str__(self) -> str:
        return f"Paciente {self.user}"


class ClinicalRecord(models.Model):
    class Risk(models.TextChoices):
        LOW = "low", "Bajo"
        MEDIUM = "medium", "Medio"
        HIGH = "high", "Alto"

    patient = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="clinical_record")
    professional = models.ForeignKey(
        "professionals.Professional", null=True, blank=True, on_delete=models.SET_NULL, related_name="records"
    )
    opened_on = models.DateField()
    reason_for_consultation = models.TextField()
    diagnosis = models.CharField(max_length=255, blank=True)
    risk_level = models.CharField(max_length=8, choices=Risk.choices, default=Risk.LOW)
    medication = models.JSONField(default=list, blank=True)
    closed_on = models.DateField(null=True, blank=True)

    class Meta:
        verbose_name = "historia clínica"
        verbose_name_plural = "historias clínicas"

    def __str__(self) -> str:
        return f"Historia de {self.patient}"


class SessionNote(models.Model):
    record = models.ForeignKey(ClinicalRecord, on_delete=models.CASCADE, related_name="notes")
    appointment = models.OneToOneField(
        "appointments.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="session_note"
    )
    written_at = models.DateTimeField()
    content = models.TextField()
    mood_score = models.PositiveSmallIntegerField(null=True, blank=True)
    assessments = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "nota de sesión"
        verbose_name_plural = "notas de sesión"
        ordering = ["written_at"]

    def __str__(self) -> str:
        return f"Nota {self.pk} de {self.record}"
