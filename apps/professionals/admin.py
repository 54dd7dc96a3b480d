from django.contrib import admin

from apps.professionals.models import Professional

admin.site.register(Professional)
