"""Realistic, deterministic clinic data for the demo and the benchmarks.

``scale`` is roughly the size in MB of the clinic's plain SQL dump (1 ≈ 1 MB),
so ``--scale 500`` gives a clinic of about 500 MB.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.db import transaction

from apps.appointments.models import Appointment
from apps.chat.models import Conversation, Message
from apps.clinical_history.models import ClinicalRecord, PatientProfile, SessionNote
from apps.payment_system.models import Payment
from apps.professionals.models import Professional
from apps.users.models import User

FIRST_NAMES = [
    "José",
    "María",
    "Begoña",
    "Iñaki",
    "Àngels",
    "Sofía",
    "Andrés",
    "Lucía",
    "Martín",
    "Inés",
    "Ramón",
    "Nuria",
    "Joaquín",
    "Ángela",
    "Óscar",
    "Raúl",
    "Mónica",
    "Héctor",
    "Élodie",
    "Zoë",
]
LAST_NAMES = [
    "Muñoz",
    "Peña",
    "Ibáñez",
    "Gómez",
    "Fernández",
    "Núñez",
    "Castaño",
    "Martínez",
    "Sáenz",
    "López",
    "Güell",
    "Pérez",
    "Rodríguez",
    "Álvarez",
    "Domínguez",
    "Ortiz",
    "Echevarría",
]
SPECIALTIES = [
    "Psicología clínica",
    "Terapia cognitivo-conductual",
    "Psicología infantil",
    "Neuropsicología",
    "Terapia de pareja",
    "Psicología del trauma",
]
DIAGNOSES = [
    "Trastorno de ansiedad generalizada",
    "Episodio depresivo leve",
    "Duelo complicado",
    "Insomnio de conciliación",
    "Estrés laboral",
    "Fobia social",
    "",
]
NOTE_SENTENCES = [
    "La paciente refiere mejoría en la calidad del sueño tras aplicar la higiene del sueño acordada.",
    "Se trabaja la reestructuración cognitiva de pensamientos automáticos negativos sobre el trabajo.",
    "Expresa preocupación por la relación con su familia; se exploran límites y comunicación asertiva.",
    "Se revisan los registros de ansiedad de la semana: tres episodios, de menor intensidad (6/10).",
    "Acordamos practicar respiración diafragmática dos veces al día y anotar las situaciones gatillo.",
    "Comenta que ha retomado la actividad física; se refuerza el logro y se planifica la continuidad.",
    "Se observa afecto congruente, discurso coherente y sin ideación autolítica en el momento actual.",
    "Trabajamos la exposición gradual: hoy ha conseguido hacer una llamada que evitaba desde hace meses.",
    "Refiere rumiaciones nocturnas («¿y si no lo consigo?»); se introduce la técnica de aplazamiento.",
    "Se pacta revisar la medicación con su psiquiatra; mantiene seguimiento y buena adherencia.",
]
MESSAGE_SENTENCES = [
    "¿Podemos mover la cita del jueves a las 18:00?",
    "Gracias por la sesión de hoy 😊",
    "Le envío el registro de pensamientos de esta semana.",
    "Confirmo la cita, un saludo.",
    "¿Aceptan pago con transferencia?",
    "He tenido una semana difícil, lo hablamos el lunes.",
]

PATIENTS_PER_SCALE = 66  # measured: about 66 patients per MB of plain dump
BATCH = 2000


def clinic_has_data() -> bool:
    return User.objects.filter(role=User.Role.PATIENT).exists()


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST_NAMES), f"{rng.choice(LAST_NAMES)} {rng.choice(LAST_NAMES)}"


def _note(rng: random.Random, sentences: int) -> str:
    return " ".join(rng.choice(NOTE_SENTENCES) for _ in range(sentences))


@transaction.atomic
def demo_data_generate(*, schema_name: str, scale: float, seed: int = 0) -> None:
    """Fill the current clinic schema with professionals, patients and their history."""
    rng = random.Random(f"{schema_name}-{seed}")
    password = make_password(None)  # patients cannot log in with a guessable password
    start = datetime(2024, 1, 8, 9, 0, tzinfo=UTC)

    professionals = []
    for index in range(max(2, int(scale**0.5) + 2)):
        first, last = _name(rng)
        user = User.objects.create_user(
            f"profesional{index + 1}@{schema_name}.com",
            None,
            first_name=first,
            last_name=last,
            role=User.Role.PROFESSIONAL,
        )
        professionals.append(
            Professional.objects.create(
                user=user,
                full_name=f"{first} {last}",
                specialty=rng.choice(SPECIALTIES),
                license_number=f"{schema_name[:3].upper()}-{10000 + index}",
                biography=_note(rng, 3),
                session_fee=Decimal(rng.choice(["45.00", "55.50", "60.00", "72.25"])),
                accepts_new_patients=rng.random() > 0.2,
                availability={"lunes": ["09:00-14:00"], "miércoles": ["16:00-20:00"], "online": rng.random() > 0.5},
            )
        )

    patient_total = max(5, int(scale * PATIENTS_PER_SCALE))
    for first_index in range(0, patient_total, BATCH // 20):
        count = min(BATCH // 20, patient_total - first_index)
        _patients_generate(rng, schema_name, professionals, password, start, first_index, count)


def _patients_generate(rng, schema_name, professionals, password, start, first_index, count) -> None:
    patients = []
    for index in range(first_index, first_index + count):
        first, last = _name(rng)
        patients.append(
            User(
                email=f"paciente{index + 1}@{schema_name}.com",
                first_name=first,
                last_name=last,
                role=User.Role.PATIENT,
                password=password,
                phone=f"+34 6{rng.randint(10000000, 99999999)}",
            )
        )
    patients = User.objects.bulk_create(patients)

    profiles, records = [], []
    for patient in patients:
        profiles.append(
            PatientProfile(
                user=patient,
                birth_date=date(1950, 1, 1) + timedelta(days=rng.randint(0, 25000)),
                national_id=f"{rng.randint(10000000, 99999999)}{rng.choice('TRWAGMYFPDXBNJZSQVHLCKE')}",
                address=f"Calle {rng.choice(LAST_NAMES)} {rng.randint(1, 200)}, {rng.randint(1, 9)}º, Málaga",
                emergency_contact={
                    "nombre": " ".join(_name(rng)),
                    "teléfono": f"+34 6{rng.randint(10000000, 99999999)}",
                }
                if rng.random() > 0.3
                else {},
                intake_notes=_note(rng, 2),
            )
        )
        records.append(
            ClinicalRecord(
                patient=patient,
                professional=rng.choice(professionals),
                opened_on=start.date() + timedelta(days=rng.randint(0, 300)),
                reason_for_consultation=_note(rng, 2),
                diagnosis=rng.choice(DIAGNOSES),
                risk_level=rng.choice(ClinicalRecord.Risk.values),
                medication=[{"nombre": "Sertralina", "dosis_mg": 50}] if rng.random() > 0.7 else [],
                closed_on=None if rng.random() > 0.1 else date(2025, 6, 30),
            )
        )
    PatientProfile.objects.bulk_create(profiles)
    records = ClinicalRecord.objects.bulk_create(records)

    appointments = []
    for patient, record in zip(patients, records, strict=True):
        for visit in range(20):
            starts_at = start + timedelta(days=7 * visit + rng.randint(0, 400), hours=rng.randint(0, 9))
            status = rng.choice(Appointment.Status.values)
            appointments.append(
                Appointment(
                    patient=patient,
                    professional=record.professional,
                    starts_at=starts_at,
                    duration_minutes=rng.choice([45, 50, 60, 90]),
                    status=status,
                    is_online=rng.random() > 0.6,
                    reason="Seguimiento" if visit else "Primera consulta",
                    notes=_note(rng, 1),
                    cancelled_at=starts_at - timedelta(hours=20) if status == "cancelled" else None,
                )
            )
    appointments = Appointment.objects.bulk_create(appointments, batch_size=BATCH)

    notes, payments = [], []
    for number, appointment in enumerate(appointments):
        record = records[number // 20]
        if appointment.status == Appointment.Status.COMPLETED:
            notes.append(
                SessionNote(
                    record=record,
                    appointment=appointment,
                    written_at=appointment.starts_at + timedelta(hours=1),
                    content=_note(rng, rng.randint(8, 20)),
                    mood_score=rng.randint(1, 10) if rng.random() > 0.2 else None,
                    assessments={"GAD-7": rng.randint(0, 21), "PHQ-9": rng.randint(0, 27)},
                )
            )
        if appointment.status != Appointment.Status.CANCELLED:
            paid = rng.random() > 0.15
            payments.append(
                Payment(
                    patient=appointment.patient,
                    appointment=appointment,
                    amount=appointment.professional.session_fee,
                    method=rng.choice(Payment.Method.values),
                    status=Payment.Status.PAID if paid else Payment.Status.PENDING,
                    paid_at=appointment.starts_at + timedelta(minutes=55) if paid else None,
                    invoice_number=f"F-{appointment.pk:08d}",
                    details={"concepto": "Sesión de psicoterapia"},
                )
            )
    SessionNote.objects.bulk_create(notes, batch_size=BATCH)
    Payment.objects.bulk_create(payments, batch_size=BATCH)

    conversations = Conversation.objects.bulk_create(
        [Conversation(subject=f"Seguimiento de {patient.first_name}", created_at=start) for patient in patients]
    )
    Participant = Conversation.participants.through  # noqa: N806
    participants, messages = [], []
    for patient, record, conversation in zip(patients, records, conversations, strict=True):
        professional_user = record.professional.user
        participants += [
            Participant(conversation=conversation, user=patient),
            Participant(conversation=conversation, user=professional_user),
        ]
        for number in range(6):
            sent_at = start + timedelta(days=number * 9, minutes=rng.randint(0, 600))
            messages.append(
                Message(
                    conversation=conversation,
                    sender=patient if number % 2 == 0 else professional_user,
                    body=rng.choice(MESSAGE_SENTENCES),
                    sent_at=sent_at,
                    read_at=sent_at + timedelta(hours=2) if rng.random() > 0.25 else None,
                    attachments=[{"nombre": "registro.pdf", "bytes": 48213}] if rng.random() > 0.9 else [],
                )
            )
    Participant.objects.bulk_create(participants, batch_size=BATCH)
    Message.objects.bulk_create(messages, batch_size=BATCH)
