from django.contrib import admin
from django_tenants.admin import TenantAdminMixin

from apps.tenants.models import Clinic, Domain


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Clinic)
class ClinicAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("name", "schema_name", "backup_schedule", "last_backup_at", "time_zone")
    search_fields = ("name", "schema_name")
    inlines = [DomainInline]
