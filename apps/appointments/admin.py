from django.contrib import admin

from apps.appointments.models import Appointment

admin.site.register(Appointment)
