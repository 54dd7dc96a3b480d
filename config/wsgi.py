import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Refuse to serve behind a transaction-mode pooler (one clinic could see another's
# data): the server fails to start instead of failing every request.
from apps.tenants.pooler import refuse_transaction_pooler  # noqa: E402

refuse_transaction_pooler()
