from django.urls import path

from apps.backups_page import views

app_name = "backups_page"

urlpatterns = [
    path("", views.index, name="index"),
    path("entrar/", views.SignInView.as_view(), name="sign_in"),
    path("salir/", views.sign_out, name="sign_out"),
    path("crear/", views.create, name="create"),
    path("programacion/", views.schedule, name="schedule"),
    path("restaurar-archivo/", views.restore_upload, name="restore_upload"),
    path("<int:pk>/descargar/", views.download, name="download"),
    path("<int:pk>/restaurar/", views.restore_confirm, name="restore"),
    path("<int:pk>/eliminar/", views.delete_confirm, name="delete"),
    path("tareas/<int:pk>/", views.job_page, name="job"),
    path("tareas/<int:pk>/estado/", views.job_status, name="job_status"),
]
