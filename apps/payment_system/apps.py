from django.apps import AppConfig


class PaymentSystemConfig(AppConfig):
    name = "apps.payment_system"
    verbose_name = "Pagos"
