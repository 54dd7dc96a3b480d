from django.contrib import admin

from apps.payment_system.models import Payment

admin.site.register(Payment)
