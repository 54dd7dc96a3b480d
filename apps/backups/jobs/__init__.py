"""Long backup operations as Celery jobs: a job record per operation in the
clinic's schema (``models``), throttled progress (``progress``), the job
services the API and scheduler call (``services``) and the thin Celery tasks
(``tasks``)."""
