"""django-axes' database handler with a larger allowance per address than per account.

A clinic's staff sign in from one office address (a NAT): with one limit for both,
five typos by five colleagues within the cool-down would lock the whole office out,
for longer each time. An account still locks after ``AUTH_LOCKOUT_FAILURES``; an
address after ``AUTH_LOCKOUT_ADDRESS_FAILURES`` failures over any accounts. Loaded
by axes (``AXES_HANDLER``) once the apps are ready, hence a module of its own.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_lockout_parameters
from django.conf import settings
from django.db.models import Sum


class SignInAttemptsHandler(AxesDatabaseHandler):
    def get_failures(self, request, credentials: dict | None = None) -> int:
        """The failures axes compares with ``AXES_FAILURE_LIMIT`` (the account's limit):
        the address's own count is scaled so that it reaches that limit at the
        address's limit."""
        parameters = get_lockout_parameters(request, credentials)
        attempts_per_parameter = self.get_user_attempts(request, credentials)
        scaled = []
        for parameter, attempts in zip(parameters, attempts_per_parameter, strict=True):
            failures = attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            if parameter == "ip_address":
                failures = failures * settings.AUTH_LOCKOUT_FAILURES // address_limit()
            scaled.append(failures)
        return max(scaled, default=0)


def address_limit() -> int:
    return max(settings.AUTH_LOCKOUT_ADDRESS_FAILURES, settings.AUTH_LOCKOUT_FAILURES, 1)
