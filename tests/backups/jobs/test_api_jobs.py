"""The jobs API: 202 with the job and its URL, the list, another clinic's job,
and jobs really run by a worker process through the broker."""

from __future__ import annotations

import redis
from django_tenants.utils import schema_context

from apps.backups.jobs.models import BackupJob
from apps.backups.models import BackupRecord
from tests.backups.jobs.conftest import job_get
from tests.support.celery_workers import celery_app_using, wait_until, workers_running

CREATE_URL = "/api/backups/create/"
JOBS_URL = "/api/backups/jobs/"


def test_an_async_backup_is_made_by_a_worker_process(committed, broker, worker_env, tmp_path):
    alfa = committed["alfa"]
    client = alfa.admin_client()

    response = client.post(f"{CREATE_URL}?async=true")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["job"]["kind"] == "backup" and body["job"]["status"] == "queued"
    assert response["Location"] == f"http://{alfa.domain}{JOBS_URL}{body['job']['id']}/"
    # Nothing was made in the request: it waits in the broker for a worker.
    assert redis.Redis.from_url(broker).llen("celery") == 1
    with schema_context("alfa"):
        assert not BackupRecord.objects.exists()

    with workers_running(1, env=worker_env, folder=tmp_path / "workers"):
        wait_until(lambda: job_get("alfa", body["job"]["id"]).status in ("succeeded", "failed"))

    detail = client.get(response["Location"]).json()
    assert (detail["status"], detail["error"], detail["phase"]) == ("succeeded", "", "done")
    assert detail["requested_by"]["email"] == alfa.admin.email
    with schema_context("alfa"):
        record = BackupRecord.objects.get()
    assert record.status == "succeeded" and record.created_by_id == alfa.admin.pk
    assert detail["backup_info"]["id"] == record.pk and detail["backup_info"]["file_name"] == record.file_name
    assert detail["bytes_done"] == detail["bytes_total"] == record.file_size > 0
    assert detail["rows_done"] == detail["rows_total"] > 0 and detail["percent"] == 100.0
    assert client.get(JOBS_URL).json()[0]["id"] == detail["id"]


def test_the_guides_synchronous_backup_reply_is_unchanged(committed):
    response = committed["alfa"].admin_client().post(CREATE_URL)
    assert response.status_code == 201
    assert set(response.json()) == {"message", "backup_info"}
    with schema_context("alfa"):
        assert not BackupJob.objects.exists()


def test_async_with_download_and_unknown_values_are_400(committed):
    client = committed["alfa"].admin_client()
    for query in ("?async=true&download=true", "?async=quizas"):
        response = client.post(f"{CREATE_URL}{query}")
        assert response.status_code == 400, query
        assert "error" in response.json()
    with schema_context("alfa"):
        assert not BackupJob.objects.exists() and not BackupRecord.objects.exists()


def test_another_clinics_job_id_is_404(committed):
    alfa, beta = committed["alfa"], committed["beta"]
    beta_job = beta.admin_client().post(f"{CREATE_URL}?async=true").json()["job"]
    with schema_context("alfa"):
        assert not BackupJob.objects.filter(pk=beta_job["id"]).exists()

    client = alfa.admin_client()
    response = client.get(f"{JOBS_URL}{beta_job['id']}/")

    assert response.status_code == 404 and response.json() == {"error": "No encontrado."}
    assert client.get(JOBS_URL).json() == []
    mine = beta.admin_client().get(f"{JOBS_URL}{beta_job['id']}/").json()
    assert mine["backup_info"]["file_name"].startswith("backup-sql-beta-")


def test_jobs_need_a_clinic_admin(committed):
    alfa = committed["alfa"]
    assert alfa.client().get(JOBS_URL).status_code == 401
    staff = alfa.client()
    staff.credentials(HTTP_AUTHORIZATION=f"Bearer {alfa.token_for(alfa.staff)}")
    assert staff.get(JOBS_URL).status_code == 403
    assert staff.get(f"{JOBS_URL}1/").status_code == 403


def test_a_broker_that_does_not_answer_is_503_and_the_job_is_failed(committed, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_CONFIGURED = True
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    with celery_app_using(settings.CELERY_BROKER_URL):
        response = committed["alfa"].admin_client().post(f"{CREATE_URL}?async=true")

    assert response.status_code == 503
    assert "Redis" in response.json()["error"]
    with schema_context("alfa"):
        job = BackupJob.objects.get()
        assert job.status == "failed" and "broker" in job.error
        assert not BackupRecord.objects.exists()


def test_the_openapi_schema_describes_the_jobs(committed):
    schema = committed["alfa"].admin_client().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert "/api/backups/jobs/" in paths and "/api/backups/jobs/{id}/" in paths
    assert set(paths["/api/backups/restore/"]["post"]["responses"]) >= {"202", "400", "404", "409"}
    create = paths["/api/backups/create/"]["post"]
    assert {"201", "202"} <= set(create["responses"])
    assert "async" in {parameter["name"] for parameter in create["parameters"]}
    job = schema["components"]["schemas"]["BackupJob"]["properties"]
    assert {"status", "phase", "bytes_done", "bytes_total", "rows_done", "rows_total", "percent"} <= set(job)
