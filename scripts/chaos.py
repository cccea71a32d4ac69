"""`make chaos`: mixed traffic from several clients against gunicorn and the embedded database as `make run` starts
them, while workers and the database are killed and failpoints armed; then every answer is checked on the database.

CHAOS_SECONDS (default 120) bounds the traffic; CHAOS_SEED replays the same choices (not the same timing).
Exits 1 on a violation of what the service promises, 2 when the campaign itself could not run.
"""
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import embedded_db
import mint_token
import processes
import pymongo
import run_dev
from bson import ObjectId
from chaos_checks import IN_PROGRESS, SOME_NEW_PATIENT, Ledger, Snapshot, violations
from dev_secret import new_master_key

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.http.routes.patients import ADD_AND_LINK_EXAMPLE  # noqa: E402 - the documented body
from app.store.db import ClinicDatabase  # noqa: E402 - opens patients as the service does, to compare them with answers
from app.store.records import public_patient  # noqa: E402
from config import DEFAULT_WORKERS, local_master_key, number_setting  # noqa: E402

SECONDS = number_setting("CHAOS_SECONDS", 120.0, float)
SEED = number_setting("CHAOS_SEED", random.randrange(1 << 32))
CLIENTS = 6
APPOINTMENTS = 20  # each client's own, scheduled before the first fault
WORKERS = DEFAULT_WORKERS  # the service starts without the caller's WEB_CONCURRENCY
DOCTOR = "chaos_doctor_{}"
SECRET = secrets.token_urlsafe(48)  # the service's JWT_SECRET for this run, never written to disk
APP_NAME = "clinic-records"  # app/store/db.py's appname: the failpoints spare the campaign's own client
REQUEST_TIMEOUT = 15  # seconds; past it a request counts as unanswered (the service's deadline is 5 s)
RETRIES = (0.25, 0.5, 1, 2, 4)  # seconds before each retry of an unanswered keyed request
PARKED_RETRY = 15  # seconds between retries of a keyed request still running elsewhere (taken over after 60 s)
MISSING = 0.1  # the share of add_and_link sent for an appointment that does not exist (the documented 404)
TAKEN = 0.2  # the share of keyed add_and_link sent for an appointment already linked (a refusal, 409, kept too)
THINK = 0.03  # at most this many seconds between two requests of a client
ACTIONS = {"add_and_link, keyed": 14, "add_and_link": 8, "link": 12, "unlink": 14, "correct": 18, "read": 28,
           "re-send": 6}
FIRST_FAULTS = 2.0  # seconds between the first fault of each kind, so that no run is spared one by luck
MEAN_GAP = 3.0  # seconds between two faults after those, on average
FAULT_WEIGHTS = {"failpoint": 6, "worker": 3, "database": 1}
FAILED_COMMANDS = ("insert", "update", "delete", "find", "bulkWrite", "commitTransaction", "abortTransaction",
                   "findAndModify")
SENT_BY_EVERY_WRITE = ("bulkWrite", "commitTransaction")
FAILURES = {"InterruptedAtShutdown": {"errorCode": 11600}, "ShutdownInProgress": {"errorCode": 91},
            "PrimarySteppedDown": {"errorCode": 189}, "WriteConflict": {"errorCode": 112},
            "TransientTransactionError": {"errorCode": 251, "errorLabels": ["TransientTransactionError"]},
            "closeConnection": {"closeConnection": True}}
FAULT_NAMES = {"worker": "gunicorn worker killed (SIGKILL)", "database": "database killed (SIGKILL) and restarted",
               "failpoint": "failCommand armed"}
NAMES = ("Smith", "Garcia", "Chen", "Okafor", "Nilsen", "Patel", "Haddad", "Sato", "Rossi", "Novak")
DOUBT = "in doubt"  # what a client believes of a record after a write it got no answer to, until it reads it
# Linux sends these children SIGTERM when the campaign dies, even by kill -9, as make run's are sent. It goes by
# the thread that started them, so every process is started from the main thread.
DIE_WITH_US = processes.DIE_WITH_PARENT


class CouldNotRun(Exception):
    """The campaign itself could not go on: the stack did not start, or a client failed."""


class Stack:
    """The embedded database and gunicorn as `make run` starts them, in a directory of their own, and their faults."""

    def __init__(self, workdir, rng):
        self.workdir, self.rng = workdir, rng
        self.db_port, self.port = processes.free_port(), processes.free_port()
        self.uri = embedded_db.uri(self.db_port)
        # make run's database (--sync-on-commit), in replica-set mode, taking configureFailPoint.
        self.db_argv = embedded_db.command(self.db_port, workdir / "db", test_commands=True)
        self.master_key = new_master_key()  # FIELD_ENCRYPTION_KEY, random, never written to disk
        self.database = self.service = self.client = None
        self.faults, self.failpoints = Counter(), Counter()

    def start(self):
        """Start the database, then gunicorn, and return once the service is ready."""
        self.start_database()
        self.client = pymongo.MongoClient(self.uri, tz_aware=True, serverSelectionTimeoutMS=5000)
        tokens = {name: os.environ[name] for name in ("JWT_AUDIENCE", "JWT_ISSUER") if os.environ.get(name)}
        env = processes.bare_environment(HOST=embedded_db.HOST, PORT=self.port, MONGODB_URI=self.uri, JWT_SECRET=SECRET,
                               FIELD_ENCRYPTION_KEY=self.master_key, **tokens)  # mint_token puts these in tokens
        with open(self.workdir / "gunicorn.log", "ab") as log:
            self.service = subprocess.Popen(run_dev.gunicorn_command(), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=DIE_WITH_US)
        print(f"chaos: started gunicorn, pid {self.service.pid}", file=sys.stderr)
        self.wait_until_ready()

    def start_database(self):
        """Start the database on its port and storage, and wait until it answers."""
        self.database = embedded_db.start(self.db_argv, log=self.workdir / "db.log", own_session=True,
                                          preexec_fn=DIE_WITH_US)
        print(f"chaos: started secantusd-py, pid {self.database.pid}", file=sys.stderr)
        embedded_db.wait_until_answering(self.database, self.uri, 30)

    def wait_until_ready(self, timeout=60):
        """Return once /readyz answers 200: the database answers and the service has prepared it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://{embedded_db.HOST}:{self.port}/readyz", timeout=2) as ready:
                    if ready.status == 200:
                        return
            except OSError:
                pass
            if self.service.poll() is not None or time.monotonic() > deadline:
                raise CouldNotRun(f"the service did not get ready; see {self.workdir / 'gunicorn.log'}")
            time.sleep(0.2)

    def deal(self, kind, commands=FAILED_COMMANDS):
        """Deal one fault of this kind; a failpoint fails one of these commands."""
        if kind == "worker":
            workers = processes.children(self.service.pid)  # gunicorn's workers
            if not workers:
                return  # the master is still replacing the last one
            os.kill(self.rng.choice(workers), signal.SIGKILL)  # the master starts another
        elif kind == "database":
            self.database.kill()
            self.database.wait()
            # Now and then down for longer than the service's deadline (5 s), so that requests answer 503.
            time.sleep(self.rng.uniform(0.2, 7.0))
            self.start_database()
        else:
            command, (name, failure) = self.rng.choice(commands), self.rng.choice(list(FAILURES.items()))
            self.configure_failpoint(mode={"times": self.rng.randint(1, 3)},
                                     data={"failCommands": [command], "appName": APP_NAME, **failure})
            self.failpoints[f"{command} {name}"] += 1
        self.faults[kind] += 1

    def recover(self):
        """Bring the database back if it is down, switch failpoints off and wait until the service is ready."""
        if self.database.poll() is not None:
            self.start_database()
        self.configure_failpoint(mode="off")
        self.wait_until_ready()

    def configure_failpoint(self, **settings):
        """Configure the failCommand failpoint, again if the first try met a connection the restart closed."""
        try:
            self.client.admin.command("configureFailPoint", "failCommand", **settings)
        except pymongo.errors.ConnectionFailure:
            self.client.admin.command("configureFailPoint", "failCommand", **settings)

    def stop(self):
        """Stop gunicorn and its workers, then the database; kill whatever is left."""
        processes.stop(self.service, 20, group=True)
        processes.stop(self.database, 10, group=True)
        if self.client is not None:
            self.client.close()


def fault_plan(rng, seconds):
    """Return (second, kind) of each fault: one of each kind first, early, then one every few seconds at random."""
    kinds = list(FAULT_WEIGHTS)
    rng.shuffle(kinds)
    plan = [(min(FIRST_FAULTS * (number + 1), seconds * (number + 1) / 4), kind) for number, kind in enumerate(kinds)]
    at = plan[-1][0]
    while (at := at + rng.expovariate(1 / MEAN_GAP)) < seconds - 1:
        plan.append((at, rng.choices(kinds, [FAULT_WEIGHTS[kind] for kind in kinds])[0]))
    return plan


@dataclass
class Answer:
    """One answer as a client saw it: no status when none came (a timeout or a dropped connection)."""

    status: int | None
    body: object
    headers: dict
    request_id: str

    @property
    def unknown(self):
        """Tell whether the request's outcome is unknown: no answer, or a server error."""
        return self.status is None or self.status >= 500

    @property
    def data(self):
        """Return the answer's data, if any."""
        return self.body.get("data") if isinstance(self.body, dict) else None


@dataclass
class Keyed:
    """An add_and_link sent with an Idempotency-Key, and the ids of every attempt at it."""

    key: str
    appointment_id: str
    body: dict
    request_ids: list = field(default_factory=list)
    last_try: float = 0.0


class Client:
    """One doctor's front desk: sends that doctor's requests one at a time and writes down every answer."""

    def __init__(self, number, port, seed):
        self.number, self.port, self.rng = number, port, random.Random(seed)
        self.doctor = DOCTOR.format(number)
        token = mint_token.mint(self.doctor, SECRET, ttl=6 * 3600, **mint_token.expected_claims())
        self.authorization = "Bearer " + token
        self.ledger, self.answers, self.sent = Ledger(), Counter(), 0
        self.connection, self.last_used = None, 0.0
        # What this client believes each record holds: an appointment its patient id (None: free), a patient its
        # version (None: to read first). `acked` holds those whose belief comes from an answered write.
        self.appointments, self.patients, self.acked = {}, {}, set()
        self.parked, self.answered_keys = {}, []  # keyed add_and_links still unanswered (by appointment), answered
        self.failure = None

    def send(self, route, method, path, body=None, headers=None, query=""):
        """Send one request for this client's doctor; return its answer, counted under route."""
        self.sent += 1
        request_id = f"chaos-{self.number}-{self.sent}"
        sent_headers = {"Authorization": self.authorization, "X-Request-ID": request_id, **(headers or {})}
        if body is not None:
            sent_headers.setdefault("Content-Type", "application/json")
        if self.connection is not None and time.monotonic() - self.last_used > 4:
            self.connection.close()  # gunicorn drops a connection idle for 5 s (keepalive)
            self.connection = None
        try:
            self.connection = self.connection or http.client.HTTPConnection(embedded_db.HOST, self.port,
                                                                            timeout=REQUEST_TIMEOUT)
            self.connection.request(method, f"{path}?uid={self.doctor}{query}",
                                    None if body is None else json.dumps(body), sent_headers)
            response = self.connection.getresponse()
            raw = response.read()
            answer = Answer(response.status, json.loads(raw) if raw else None, dict(response.headers), request_id)
        except (OSError, http.client.HTTPException, ValueError):
            self.connection.close()
            self.connection = None
            answer = Answer(None, None, {}, request_id)
        self.last_used = time.monotonic()
        self.answers[route, answer.status] += 1
        return answer

    def schedule_appointments(self):
        """Schedule this client's appointments, before any fault."""
        for number in range(APPOINTMENTS):
            body = {"date": f"2027-01-{number % 28 + 1:02d}T09:00:00Z", "reason": "Follow-up"}
            answer = self.send("POST appointments", "POST", "/appointments", body,
                               {"Idempotency-Key": f"schedule-{number}"})
            if answer.status != 201:
                raise CouldNotRun(f"scheduling an appointment answered {answer.status}")
            self.appointments[answer.data["_id"]] = None
            self.acked.add(answer.data["_id"])
            self.ledger.settle_appointment(answer.data["_id"], None)

    def run(self, until):
        """Send mixed requests until the deadline."""
        while time.monotonic() < until:
            self.step()
            time.sleep(self.rng.uniform(0, THINK))

    def step(self):
        """Send the next request: a keyed request due again, a read of a record in doubt, or a random action."""
        due = [keyed for keyed in self.parked.values() if time.monotonic() - keyed.last_try > PARKED_RETRY]
        doubted = [a for a, held in self.appointments.items() if held == DOUBT and a not in self.parked]
        unread = [p for p, version in self.patients.items() if version is None]
        if due:
            return self.retry_parked(due[0])
        if doubted:
            return self.read_appointment(doubted[0])
        if unread:
            return self.read_patient(unread[0])
        action = self.rng.choices(list(ACTIONS), list(ACTIONS.values()))[0]
        free = [a for a, held in self.appointments.items() if held is None and a not in self.parked]
        linked = [a for a, held in self.appointments.items() if held not in (None, DOUBT)]
        if action == "add_and_link, keyed" and linked and self.rng.random() < TAKEN:
            return self.add_and_link(self.rng.choice(linked), keyed=True)
        if action.startswith("add_and_link") and (free or not linked):
            missing = not free or self.rng.random() < MISSING
            return self.add_and_link(str(ObjectId()) if missing else self.rng.choice(free), action.endswith("keyed"))
        if action.startswith("add_and_link"):
            return self.relink(self.rng.choice(linked), None)  # every appointment taken: free one first
        if action == "link" and free and self.patients:
            return self.relink(self.rng.choice(free), self.rng.choice(list(self.patients)))
        if action == "unlink" and linked:
            return self.relink(self.rng.choice(linked), None)
        if action == "correct" and self.patients:
            return self.correct(self.rng.choice(list(self.patients)))
        if action == "re-send" and self.answered_keys:  # it must be answered as before, marked as replayed
            return self.try_keyed(self.rng.choice(self.answered_keys), "POST add_and_link, re-sent")
        return self.read()

    def patient_body(self, appointment_id):
        """Return an add_and_link body for this appointment: the documented example, another name."""
        return {**ADD_AND_LINK_EXAMPLE, "appointment_id": appointment_id, "firstName": f"Chaos{self.number}",
                "lastName": self.rng.choice(NAMES)}

    def add_and_link(self, appointment_id, keyed):
        """Create a patient for the appointment; a keyed request is retried until it gets an answer, or parked."""
        self.ledger.requests[appointment_id] += 1
        body = self.patient_body(appointment_id)
        if not keyed:
            answer = self.send("POST add_and_link", "POST", "/patients/add_and_link", body)
            return self.added(appointment_id, answer, [answer.request_id])
        request = Keyed(f"visit-{self.number}-{self.sent}", appointment_id, body)
        self.ledger.keyed[request.key] = []
        for delay in (0, *RETRIES):
            time.sleep(delay)
            answer = self.try_keyed(request, "POST add_and_link, keyed")
            if not self.still_running(answer):
                return self.added(appointment_id, answer, request.request_ids, request)
        self.parked[appointment_id] = request
        self.uncertain_link(appointment_id)

    def try_keyed(self, request, route):
        """Send the keyed request once more, writing its answer down under its key."""
        request.last_try = time.monotonic()
        answer = self.send(route, "POST", "/patients/add_and_link", request.body,
                           {"Idempotency-Key": request.key})
        request.request_ids.append(answer.request_id)
        self.ledger.keyed[request.key].append((answer.status, answer.body, answer.headers.get(
            "Idempotent-Replayed") == "true"))
        return answer

    @staticmethod
    def still_running(answer):
        """Tell whether a keyed request has no answer yet: none came, a server error, or its key is still busy."""
        return answer.unknown or (answer.status == 409 and (answer.body or {}).get("error") == IN_PROGRESS)

    def retry_parked(self, request):
        """Send a parked keyed request again; once answered, it counts as the answer to it."""
        answer = self.try_keyed(request, "POST add_and_link, keyed")
        if not self.still_running(answer):
            del self.parked[request.appointment_id]
            self.added(request.appointment_id, answer, request.request_ids, request)

    def added(self, appointment_id, answer, request_ids, request=None):
        """Write down an add_and_link's answer."""
        ids, patient = tuple(request_ids), answer.data
        if answer.status == 201 or (answer.status == 404 and patient):
            patient_id, outcome = patient["_id"], answer.status
            self.ledger.settle_patient(patient_id, 1, patient)
            self.patients[patient_id] = 1
            self.acked.add(patient_id)
            if outcome == 201:
                self.ledger.settle_appointment(appointment_id, patient_id)
                self.believe(appointment_id, patient_id, acked=True)
            # One audit record either way: the patient made and the appointment it was linked to (201) or not (404).
            self.ledger.writes.append((ids, "patient.create", outcome,
                                       {"patient_id": patient_id, "appointment_id": appointment_id}))
        elif answer.unknown:
            self.uncertain_link(appointment_id)
        elif answer.status != 409 or self.appointments.get(appointment_id) in (None, DOUBT):
            self.refused(answer, "appointment", appointment_id, "add_and_link")
        # else linked, as this client knew: the refusal is the answer, which a re-send must get again
        if request is not None and not answer.unknown:
            self.answered_keys.append(request)

    def uncertain_link(self, appointment_id):
        """Note that an add_and_link for the appointment may have linked a patient nobody was told of."""
        if appointment_id in self.appointments:
            self.ledger.doubt_appointment(appointment_id, SOME_NEW_PATIENT)
            self.believe(appointment_id, DOUBT)

    def relink(self, appointment_id, patient_id):
        """Link a patient this client knows to a free appointment (PUT), or free a linked one (None: DELETE)."""
        route, method = ("DELETE link", "DELETE") if patient_id is None else ("PUT link", "PUT")
        answer = self.send(route, method, f"/appointments/{appointment_id}/patient",
                           None if patient_id is None else {"patient_id": patient_id})
        if answer.status == 200:
            if appointment_id in self.acked:  # it held what was believed: the answer is a write, with its entry
                action = "appointment.unlink" if patient_id is None else "appointment.link"
                self.ledger.writes.append(((answer.request_id,), action, 200, {
                    "appointment_id": appointment_id, "patient_id": patient_id or self.appointments[appointment_id]}))
            self.ledger.settle_appointment(appointment_id, patient_id)
            self.believe(appointment_id, patient_id, acked=True)
        elif answer.unknown:
            self.ledger.doubt_appointment(appointment_id, patient_id)
            self.believe(appointment_id, DOUBT)
        elif (answer.body or {}).get("error") == "Patient not found":
            self.refused(answer, "patient", patient_id, route)
        else:
            self.refused(answer, "appointment", appointment_id, route)

    def correct(self, patient_id):
        """Correct one field of a patient at the version this client read."""
        version = self.patients[patient_id]
        patch = self.rng.choice(({"contact": {"phone": f"+1{self.rng.randrange(10**9):09d}"}},
                                 {"lastName": self.rng.choice(NAMES)}, {"address": {"city": self.rng.choice(NAMES)}},
                                 {"medicalHistory": f"Seen {self.rng.randrange(100)} times"},
                                 {"currentMedications": None}))
        answer = self.send("PATCH patient", "PATCH", f"/patients/{patient_id}", patch,
                           {"If-Match": f'"{version}"', "Content-Type": "application/merge-patch+json"})
        if answer.status == 200:
            now = int(answer.headers["ETag"].strip('"'))
            if now != version:  # a patch that changes nothing writes nothing
                self.ledger.writes.append(((answer.request_id,), "patient.update", 200, {"patient_id": patient_id}))
            self.ledger.settle_patient(patient_id, now, answer.data)
            self.patients[patient_id] = now
            self.acked.add(patient_id)
        elif answer.unknown:
            self.ledger.doubt_patient(patient_id, version + 1)
            self.patients[patient_id] = None
            self.acked.discard(patient_id)
        else:
            self.refused(answer, "patient", patient_id, "PATCH")

    def read(self):
        """Read something of this doctor's: a patient, its history, an appointment or a list."""
        choice = self.rng.randrange(5)
        if choice == 0 and self.patients:
            return self.read_patient(self.rng.choice(list(self.patients)))
        if choice == 1 and self.appointments:
            return self.read_appointment(self.rng.choice(list(self.appointments)))
        if choice == 2 and self.patients:
            return self.send("GET history", "GET", f"/patients/{self.rng.choice(list(self.patients))}/history")
        if choice == 3:
            return self.send("GET lists", "GET", "/patients", query=f"&q={self.rng.choice(NAMES)[:2].lower()}")
        return self.send("GET lists", "GET", "/appointments", query="&linked=true")

    def read_appointment(self, appointment_id):
        """Read an appointment: what it holds must be what was acknowledged, and resolves a doubt."""
        answer = self.send("GET appointment", "GET", f"/appointments/{appointment_id}")
        if answer.status == 200:
            holds = answer.data.get("patient_id")
            if appointment_id in self.acked and holds != self.appointments[appointment_id]:
                self.contradiction(answer, f"appointment {appointment_id}: read pointing to {holds}, "
                                           f"acknowledged {self.appointments[appointment_id]}")
            self.believe(appointment_id, holds)
            if holds is not None:
                self.patients.setdefault(holds, None)  # a patient of an unanswered add_and_link, now known
        elif not answer.unknown:
            self.refused(answer, "appointment", appointment_id, "GET")

    def read_patient(self, patient_id):
        """Read a patient: its version must be the one acknowledged, and a doubt is resolved."""
        answer = self.send("GET patient", "GET", f"/patients/{patient_id}")
        if answer.status == 200:
            version = int(answer.headers["ETag"].strip('"'))
            if patient_id in self.acked and version != self.patients[patient_id]:
                self.contradiction(answer, f"patient {patient_id}: read at version {version}, "
                                           f"acknowledged {self.patients[patient_id]}")
                self.acked.discard(patient_id)
            self.patients[patient_id] = version
        elif not answer.unknown:
            self.refused(answer, "patient", patient_id, "GET")

    def believe(self, appointment_id, holds, acked=False):
        """Take what an appointment holds as known; acknowledged when a write's answer said so."""
        self.appointments[appointment_id] = holds
        (self.acked.add if acked else self.acked.discard)(appointment_id)

    def refused(self, answer, kind, record_id, what):
        """A refusal: this client's belief was wrong, a contradiction if it came from an acknowledged write."""
        if record_id in self.acked:
            self.contradiction(answer, f"{kind} {record_id}: {what} answered {answer.status}, "
                                       f"against what was acknowledged")
        if kind == "patient":
            if answer.status == 404:
                self.patients.pop(record_id, None)
            else:
                self.patients[record_id] = None
            self.acked.discard(record_id)
        elif answer.status == 404:
            self.appointments.pop(record_id, None)  # gone: the checks report it
        elif record_id in self.appointments:
            self.believe(record_id, DOUBT)

    def contradiction(self, answer, text):
        """Write down an answer that cannot follow what was acknowledged before it."""
        self.ledger.contradictions.append(f"{text} (request {answer.request_id})")

    def settle(self):
        """Once the faults have stopped: send parked keyed requests again, and re-send every answered one."""
        for request in list(self.parked.values()):
            self.retry_parked(request)
        for request in self.answered_keys:
            self.try_keyed(request, "POST add_and_link, re-sent")


def start_threads(clients, work):
    """Start work(client) for every client, each in a thread of its own; a failure of the campaign is kept."""

    def guarded(client):
        try:
            work(client)
        except Exception:  # noqa: BLE001 - reported by main, which then fails
            client.failure = traceback.format_exc()

    threads = [threading.Thread(target=guarded, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    return threads


def snapshot(db, values, doctor):
    """Read one doctor's records from the database."""
    appointments = {str(stored["_id"]): None if stored.get("patient_id") is None else str(stored["patient_id"])
                    for stored in db.appointments.find({"doctor_id": doctor}, {"patient_id": 1})}
    patients = {str(stored["_id"]): (stored.get("version", 1), public_patient(stored, values))
                for stored in db.patients.find({"doctor_id": doctor})}
    versions = defaultdict(list)
    for stored in db.patient_versions.find({"doctor_id": doctor}, {"patient_id": 1, "version": 1}).sort("version"):
        versions[str(stored["patient_id"])].append(stored["version"])
    return Snapshot(appointments, patients, dict(versions), list(db.audit.find({"doctor_id": doctor})))


def check(clients, stack):
    """Check each client's doctor's records against its ledger; return the violations and what was looked at."""
    database = ClinicDatabase(stack.client, "clinic", 5000,
                        master_key=local_master_key("FIELD_ENCRYPTION_KEY", stack.master_key))
    database.prepare()
    found, checked = defaultdict(list), Counter()
    for client in clients:
        records = snapshot(database.db, database.values, client.doctor)
        for check, lines in violations(client.ledger, records).items():
            found[check].extend(lines)
        checked.update({"appointments": len(records.appointments), "patients": len(records.patients),
                        "audit entries": len(records.audit), "answered writes": len(client.ledger.writes),
                        "Idempotency-Keys": len(client.ledger.keyed)})
    database.values.close()
    return found, checked


def report(clients, stack, found, checked):
    """Print the answers, the faults and the checks; return whether every check passed."""
    answers = sum((client.answers for client in clients), Counter())
    statuses = sorted({status for _, status in answers if status is not None}) + [None]
    routes = list(dict.fromkeys(route for route, _ in answers))
    width = max(map(len, routes)) + 2
    print(f"\nchaos: {SECONDS:g} s of traffic from {CLIENTS} clients, {WORKERS} gunicorn workers, field encryption on"
          f" (CHAOS_SEED={SEED})\n")
    print("answers".ljust(width) + "".join(f"{status or 'none':>7}" for status in statuses))
    for route in routes:
        print(route.ljust(width) + "".join(f"{answers[route, status] or '.':>7}" for status in statuses))
    total = Counter()
    for (_, status), count in answers.items():
        total["none" if status is None else f"{status // 100}xx"] += count
    print(f"requests {sum(total.values())}: " + ", ".join(f"{kind} {total[kind]}"
                                                         for kind in ("2xx", "3xx", "4xx", "5xx", "none")))
    print("\nfaults")
    for kind, name in FAULT_NAMES.items():
        print(f"  {name:<48}{stack.faults[kind]:>6}")
    print("    " + ", ".join(f"{name} {count}" for name, count in sorted(stack.failpoints.items())))
    print("\nchecked: " + ", ".join(f"{count} {name}" for name, count in checked.items()))
    print(f"checks{'violations':>50}")
    clean = True
    for check, lines in found.items():
        print(f"  {check.__name__.replace('_', ' '):<46}{len(lines):>8}")
        for line in lines[:20]:
            print(f"      {line}")
        if len(lines) > 20:
            print(f"      ... and {len(lines) - 20} more")
        clean = clean and not lines
    return clean


def main():
    """Run the campaign; return 0 when every check passed, 1 on a violation, 2 when it could not run."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))
    rng, workdir = random.Random(SEED), Path(tempfile.mkdtemp(prefix="chaos-"))
    stack, clean = Stack(workdir, rng), False
    try:
        stack.start()
        clients = [Client(number, stack.port, rng.randrange(1 << 32)) for number in range(CLIENTS)]
        for client in clients:
            client.schedule_appointments()
        until = time.monotonic() + SECONDS
        threads = start_threads(clients, lambda client: client.run(until))
        began = time.monotonic()
        for number, (at, kind) in enumerate(fault_plan(rng, SECONDS)):
            time.sleep(max(0.0, began + at - time.monotonic()))
            # The first failpoint at a command every write sends, so that it fires.
            stack.deal(kind, SENT_BY_EVERY_WRITE if number < len(FAULT_WEIGHTS) else FAILED_COMMANDS)
        for thread in threads:
            thread.join()
        stack.recover()
        for thread in start_threads(clients, Client.settle):
            thread.join()
        failures = [client.failure for client in clients if client.failure]
        if failures:
            raise CouldNotRun("a client failed:\n" + failures[0])
        found, checked = check(clients, stack)
        clean = report(clients, stack, found, checked)
        return 0 if clean else 1
    except (CouldNotRun, embedded_db.DidNotAnswer) as error:
        print(f"chaos: could not run: {error}", file=sys.stderr)
        return 2
    finally:
        stack.stop()
        if clean:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"chaos: the database and the logs are kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
