from django.contrib import admin

from apps.clinical_history.models import ClinicalRecord, PatientProfile, SessionNote

admin.site.register(ClinicalRecord)

admin.site.register(SessionNote)

admin.site.register(PatientProfile)
