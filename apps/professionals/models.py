from django.conf import settings
from django.db import models


class Professional(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="professional"
    )
    full_name = models.CharField(max_length=200)
    specialty = models.CharField(max_length=120)
    license_number = models.CharField(max_length=40, unique=True)
    biography = models.TextField(blank=True)
    session_fee = models.DecimalField(max_digits=10, decimal_places=2)
    accepts_new_patients = models.BooleanField(default=True)
    availability = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "profesional"
        verbose_name_plural = "profesionales"
        ordering = ["full_name"]

    def __str__(self) -> str:
        return self.full_name
