from django.conf import settings
from django.db import models


class Payment(models.Model):
    class Method(models.TextChoices):
        CARD = "card", "Tarjeta"
        CASH = "cash", "Efectivo"
        TRANSFER = "transfer", "Transferencia"

    class Status(models.TextChoices):
        PENDING = "pending", "Pendiente"
        PAID = "paid", "Pagado"
        REFUNDED = "refunded", "Reembolsado"

    patient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments")
    appointment = models.ForeignKey(
        "appointments.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="payments"
    )
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    method = models.CharField(max_length=10, choices=Method.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    paid_at = models.DateTimeField(null=True, blank=True)
    invoice_number = models.CharField(max_length=32, unique=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name = "pago"
        verbose_name_plural = "pagos"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.invoice_number} {self.amount} {self.currency}"
