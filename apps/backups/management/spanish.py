"""Management commands that speak Spanish to the operator: argparse's and Django's
own help texts and argument errors (Python ships no Spanish catalogue for them).

Our commands subclass ``SpanishCommand`` instead of ``BaseCommand``.
"""

from __future__ import annotations

import re
import sys

from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter

# Django's and argparse's common options, by destination.
_OPTION_HELP = {
    "help": "Muestra esta ayuda y termina.",
    "version": "Muestra la versión de Django y termina.",
    "verbosity": "Nivel de detalle: 0 mínimo, 1 normal, 2 detallado, 3 muy detallado.",
    "settings": "Módulo de ajustes (p. ej. config.settings); si no se indica, DJANGO_SETTINGS_MODULE.",
    "pythonpath": "Carpeta que se añade a la ruta de Python (p. ej. /srv/psicoadmin).",
    "traceback": "Muestra la traza completa si el comando falla.",
    "no_color": "Salida sin colores.",
    "force_color": "Fuerza los colores en la salida.",
    "skip_checks": "Omite las comprobaciones del sistema.",
}

# argparse's messages (Python 3.11–3.13) → Spanish, applied in order.
_ERRORS = [
    (r"the following arguments are required: (.*)", r"faltan argumentos obligatorios: \1"),
    (r"unrecognized arguments: (.*)", r"argumentos no reconocidos: \1"),
    (r"one of the arguments (.*) is required", r"hace falta uno de estos argumentos: \1"),
    (r"argument (\S+): ", r"argumento \1: "),
    (r"invalid int value: (.*)", r"no es un número entero: \1"),
    (r"invalid float value: (.*)", r"no es un número: \1"),
    (r"invalid (\S+) value: (.*)", r"valor no válido: \2"),
    (r"invalid choice: (.*) \(choose from (.*)\)", r"opción no válida: \1 (elige entre \2)"),
    (r"expected one argument", "falta su valor"),
    (r"expected at least one argument", "falta al menos un valor"),
    (r"not allowed with argument (.*)", r"no se puede usar junto con \1"),
    (r"ignored explicit argument (.*)", r"valor no admitido: \1"),
]


def spanish_message(message: str) -> str:
    for pattern, replacement in _ERRORS:
        message = re.sub(pattern, replacement, message)
    return message


class _SpanishHelpFormatter(DjangoHelpFormatter):
    def add_usage(self, usage, actions, groups, prefix=None):
        super().add_usage(usage, actions, groups, prefix if prefix is not None else "uso: ")


class SpanishCommand(BaseCommand):
    """A ``BaseCommand`` whose ``--help`` and argument errors are in Spanish."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, formatter_class=_SpanishHelpFormatter, **kwargs)
        parser._positionals.title = "argumentos"
        parser._optionals.title = "opciones"
        for action in parser._actions:
            if action.dest in _OPTION_HELP:
                action.help = _OPTION_HELP[action.dest]

        def error(message: str):
            message = spanish_message(message)
            if parser.called_from_command_line:
                parser.print_usage(sys.stderr)
                parser.exit(2, f"{parser.prog}: error: {message}\n")
            raise CommandError(f"Error: {message}")

        parser.error = error
        return parser
