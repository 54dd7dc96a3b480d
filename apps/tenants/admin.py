from django.contrib import admin
from django_tenants.admin import TenantAdminMixin

from apps.tenants.models import Clinic, Domain


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Clinic)
class ClinicAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = ("name", "schema", "backup_schedule", "last_backup_at", "time_zone")
    list_filter = ("backup_schedule",)
    search_fields = ("name", "schema_name")
    inlines = [DomainInline]

    @admin.display(description="esquema", ordering="schema_name")
    def schema(self, clinic: Clinic) -> str:
        return clinic.schema_name
