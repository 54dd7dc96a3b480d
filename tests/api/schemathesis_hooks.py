"""schemathesis hooks for the contract test: log in as the contract clinic's admin.

A token is fetched from the live server and reused for a few seconds only:
a restore made by the run itself ends the sessions opened before it.
"""

import os

import requests
import schemathesis


@schemathesis.auth(refresh_interval=3)
class ClinicAdminToken:
    def get(self, case, context):
        response = requests.post(
            f"{os.environ['CONTRACT_BASE_URL']}/api/auth/token/",
            json={"email": os.environ["CONTRACT_EMAIL"], "password": os.environ["CONTRACT_PASSWORD"]},
            headers={"Host": os.environ["CONTRACT_HOST"], "Connection": "close"},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()["access"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
