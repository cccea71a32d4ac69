"""What `make chaos` checks once traffic has stopped: one doctor's records against what its client was answered.

Each check returns its violations, one line each, naming ids and versions only (never a patient's values).
"""
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

# An add_and_link whose answer never came may have linked a patient nobody was told of.
SOME_NEW_PATIENT = "a patient of an unanswered add_and_link"
LINKED = (200, 201)  # a link's outcome: 201 from add_and_link, 200 from PUT
KEPT = 404  # the documented 404 of add_and_link, which keeps the patient
IN_PROGRESS = "A request with this Idempotency-Key is still in progress"


@dataclass
class Ledger:
    """What one client was answered, written down as it went: the states each of its records may be in now."""

    # appointment id -> the patient ids it may point to (None: free; SOME_NEW_PATIENT)
    appointments: dict[str, set[Any]] = field(default_factory=dict)
    # patient id -> the (version, body as answered, or None when unknown) it may be at
    patients: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    # patients whose creation or correction was answered: they must exist
    existing: set[str] = field(default_factory=set)
    # (request ids, action, outcome, targets) of each answered write: the audit entry it must have left
    writes: list[tuple[tuple[str, ...], str, int, dict[str, str]]] = field(default_factory=list)
    # appointment id -> add_and_link requests sent for it, a keyed one counted once however often retried
    requests: Counter[str] = field(default_factory=Counter)
    # Idempotency-Key -> every answer it got, in order: (status or None for no answer, body, replayed)
    keyed: dict[str, list[tuple[int | None, Any, bool]]] = field(default_factory=dict)
    # answers during the run that could not follow what had been acknowledged before
    contradictions: list[str] = field(default_factory=list)

    def settle_appointment(self, appointment_id, patient_id):
        """Record that a write to the appointment was answered: it now points to patient_id (None: free)."""
        self.appointments[appointment_id] = {patient_id}

    def doubt_appointment(self, appointment_id, patient_id):
        """Record a write to the appointment whose outcome is unknown: it may also point to patient_id now."""
        self.appointments.setdefault(appointment_id, set()).add(patient_id)

    def settle_patient(self, patient_id, version, body):
        """Record that a write to the patient was answered with this version and body."""
        self.patients[patient_id] = [(version, body)]
        self.existing.add(patient_id)

    def doubt_patient(self, patient_id, version):
        """Record a correction whose outcome is unknown: the patient may also be at this version now."""
        if patient_id in self.patients:  # else nothing was answered about it: any state will do
            self.patients[patient_id].append((version, None))


@dataclass
class Snapshot:
    """One doctor's records as the database holds them, patients opened as GET shows them."""

    appointments: dict[str, str | None]  # appointment id -> patient id or None
    patients: dict[str, tuple[int, dict[str, Any]]]  # patient id -> (version, body)
    versions: dict[str, list[int]]  # patient id -> the earlier versions kept in its history
    audit: list[dict[str, Any]]  # the doctor's audit entries as stored


def acknowledged_writes_are_there(ledger, snapshot):
    """Every answered create, link, unlink and correction is in the database as answered."""
    found = list(ledger.contradictions)
    for appointment_id, allowed in ledger.appointments.items():
        if appointment_id not in snapshot.appointments:
            found.append(f"appointment {appointment_id}: acknowledged, missing")
            continue
        stored = snapshot.appointments[appointment_id]
        if stored not in allowed and not (stored is not None and SOME_NEW_PATIENT in allowed):
            found.append(f"appointment {appointment_id}: points to {stored}, answered {_shown(allowed)}")
    for patient_id, allowed in ledger.patients.items():
        if patient_id not in snapshot.patients:
            if patient_id in ledger.existing:
                found.append(f"patient {patient_id}: acknowledged, missing")
            continue
        version, body = snapshot.patients[patient_id]
        if not any(version == answered and (data is None or data == body) for answered, data in allowed):
            same_version = any(version == answered for answered, _ in allowed)
            found.append(f"patient {patient_id}: at version {version}{' with other values' if same_version else ''}"
                         f", answered version {' or '.join(str(answered) for answered, _ in allowed)}")
    return found


def links_point_to_patients(ledger, snapshot):
    """No appointment points to a patient that is not there."""
    return [f"appointment {appointment_id}: points to missing patient {patient_id}"
            for appointment_id, patient_id in snapshot.appointments.items()
            if patient_id is not None and patient_id not in snapshot.patients]


def every_patient_was_linked_or_kept(ledger, snapshot):
    """No patient exists without its link (patient.create 201, or a later appointment.link) or the documented 404."""
    explained = {entry["targets"].get("patient_id") for entry in snapshot.audit
                 if _is_link(entry) or (entry["action"], entry["outcome"]) == ("patient.create", KEPT)}
    return [f"patient {patient_id}: neither linked nor kept by a 404" for patient_id in snapshot.patients
            if patient_id not in explained]


def links_alternate_with_unlinks(ledger, snapshot):
    """Each appointment's audit shows link and unlink in turn, ending where the appointment points."""
    found, trail = [], defaultdict(list)
    for entry in sorted(snapshot.audit, key=lambda entry: (entry["at"], entry["_id"])):
        if _is_link(entry) or (entry["action"], entry["outcome"]) == ("appointment.unlink", 200):
            trail[entry["targets"]["appointment_id"]].append(entry)
    for appointment_id in snapshot.appointments.keys() | trail.keys():
        holds = None
        for entry in trail[appointment_id]:
            patient_id = entry["targets"].get("patient_id")
            if _is_link(entry) and holds is not None:
                found.append(f"appointment {appointment_id}: linked to {patient_id} over {holds}")
            elif not _is_link(entry) and holds != patient_id:
                found.append(f"appointment {appointment_id}: unlinked from {patient_id} while it held {holds}")
            holds = patient_id if _is_link(entry) else None
        if appointment_id not in snapshot.appointments:
            found.append(f"appointment {appointment_id}: in the audit trail, missing")
        elif snapshot.appointments[appointment_id] != holds:
            found.append(f"appointment {appointment_id}: points to {snapshot.appointments[appointment_id]}, "
                         f"its audit trail ends at {holds}")
    return found


def one_patient_per_request(ledger, snapshot):
    """An add_and_link created at most one patient, however often a keyed one was retried."""
    made = Counter(entry["targets"].get("appointment_id") for entry in snapshot.audit
                   if entry["action"] == "patient.create" and entry["outcome"] in (201, KEPT)
                   and "appointment_id" in entry["targets"])
    return [f"appointment {appointment_id}: {count} patients created by {ledger.requests[appointment_id]} "
            f"add_and_link requests" for appointment_id, count in made.items()
            if count > ledger.requests[appointment_id]]


def every_write_has_its_audit_entry(ledger, snapshot):
    """Each patient has its patient.create, each version its patient.update, each answered write its entry; and no
    entry describes a write that is not there."""
    found = []
    created = Counter(entry["targets"].get("patient_id") for entry in snapshot.audit
                      if entry["action"] == "patient.create" and entry["outcome"] in (201, KEPT))
    updated = Counter(entry["targets"].get("patient_id") for entry in snapshot.audit
                      if (entry["action"], entry["outcome"]) == ("patient.update", 200))
    for patient_id, (version, _) in snapshot.patients.items():
        if created[patient_id] != 1:
            found.append(f"patient {patient_id}: {created[patient_id]} patient.create entries")
        kept = snapshot.versions.get(patient_id, [])
        if updated[patient_id] != version - 1 or kept != list(range(1, version)):
            found.append(f"patient {patient_id}: at version {version} with {updated[patient_id]} patient.update "
                         f"entries and earlier versions {kept}")
    for patient_id in (created | updated).keys() - snapshot.patients.keys():
        found.append(f"patient {patient_id}: in the audit trail, missing")
    scheduled = Counter(entry["targets"].get("appointment_id") for entry in snapshot.audit
                        if (entry["action"], entry["outcome"]) == ("appointment.create", 201))
    for appointment_id in snapshot.appointments.keys() | scheduled.keys():
        if scheduled[appointment_id] != 1:
            found.append(f"appointment {appointment_id}: {scheduled[appointment_id]} appointment.create entries")
    by_request = defaultdict(list)
    for entry in snapshot.audit:
        by_request[entry["request_id"]].append(entry)
    for request_ids, action, outcome, targets in ledger.writes:
        if not any((entry["action"], entry["outcome"]) == (action, outcome)
                   and targets.items() <= entry["targets"].items()
                   for request_id in request_ids for entry in by_request[request_id]):
            found.append(f"request {request_ids[-1]}: answered {outcome}, no {action} entry for {_shown(targets)}")
    return found


def replays_repeat_the_answer(ledger, snapshot):
    """Every retry of an answered keyed request got the same status and body again, marked as replayed."""
    found = []
    for key, answers in ledger.keyed.items():
        first = None
        for status, body, replayed in answers:
            if status is None or status >= 500:
                continue  # no answer: the retry is what counts
            if first is None:
                if not (status == 409 and isinstance(body, dict) and body.get("error") == IN_PROGRESS):
                    first = (status, body)
            elif (status, body) != first or not replayed:
                found.append(f"key {key}: answered {first[0]}, then {status}"
                             f"{'' if body == first[1] else ' with another body'}"
                             f"{'' if replayed else ' not marked Idempotent-Replayed'}")
    return found


CHECKS = (acknowledged_writes_are_there, links_point_to_patients, every_patient_was_linked_or_kept,
          links_alternate_with_unlinks, one_patient_per_request, every_write_has_its_audit_entry,
          replays_repeat_the_answer)


def violations(ledger, snapshot):
    """Return {check: [violation, ...]} for every check, in order."""
    return {check: check(ledger, snapshot) for check in CHECKS}


def _is_link(entry):
    """Tell whether an audit entry records a link that was made: a link, or add_and_link's patient made and linked."""
    return (entry["action"] == "appointment.link" and entry["outcome"] in LINKED
            or (entry["action"], entry["outcome"]) == ("patient.create", 201) and "appointment_id" in entry["targets"])


def _shown(values):
    """Return a set of ids, or the targets of an entry, as one short sorted text."""
    if isinstance(values, dict):
        return " ".join(f"{name}={value}" for name, value in sorted(values.items()))
    return " or ".join(sorted(str(value) for value in values))
