"""The database a request reads, and the unit of work it writes through, audited as its caller's."""
from flask import current_app, g

from app.http.auth import Caller
from app.http.refusals import status_of
from app.service.refusals import AppointmentNotFoundPatientKept
from app.service.steps import CREATED, DONE, PATIENT_KEPT, READ
from app.store.db import ClinicDatabase
from app.store.unit_of_work import UnitOfWork

# The status each outcome the steps record in the audit trail was answered with.
AUDITED_OUTCOMES = {CREATED: 201, DONE: 200, READ: 200, PATIENT_KEPT: status_of(AppointmentNotFoundPatientKept)}


def database() -> ClinicDatabase:
    """Return the app's database handle."""
    return current_app.extensions["clinic.db"]


def unit_of_work(caller: Caller, doctor_id: str) -> UnitOfWork:
    """Return a unit of work audited as this caller's, for this doctor, holding the request's Idempotency-Key if
    it has one."""
    # The key is claimed here, once every check has passed: a request refused before any work (400, 401, 403)
    # leaves it free for the corrected retry.
    keyed = g.get("keyed_request")
    return database().unit_of_work(caller.subject, doctor_id, g.request_id, outcomes=AUDITED_OUTCOMES,
                                   held_key=None if keyed is None else keyed.claim(doctor_id))
