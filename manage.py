#!/usr/bin/env python
"""Django's command-line utility, with one-line errors for set-up problems."""

import os
import sys


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError

    from config.env import ConfigurationError

    try:
        execute_from_command_line(sys.argv)
    except ConfigurationError as error:
        sys.stderr.write(f"Error de configuración: {error}\n")
        return 1
    except OperationalError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        sys.stderr.write(
            f"No se puede conectar a la base de datos: {reason}. Revisa DATABASE_URL "
            "(o deja que el PostgreSQL embebido arranque quitándola).\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
