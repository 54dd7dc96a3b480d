from django.conf import settings
from django.db import models


class Appointment(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Programada"
        COMPLETED = "completed", "Realizada"
        CANCELLED = "cancelled", "Cancelada"
        NO_SHOW = "no_show", "No asistió"

    patient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="appointments")
    professional = models.ForeignKey(
        "professionals.Professional", on_delete=models.PROTECT, related_name="appointments"
    )
    starts_at = models.DateTimeField()
    duration_minutes = models.PositiveSmallIntegerField(default=50)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.SCHEDULED)
    is_online = models.BooleanField(default=False)
    reason = models.CharField(max_length=255, blank=True)
    notes = models.TextField(blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "cita"
        verbose_name_plural = "citas"
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"{self.patient} con {self.professional} el {self.starts_at:%Y-%m-%d %H:%M}"
