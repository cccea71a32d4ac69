"""POST /patients/add_and_link written plainly, for `make bench` to compare the service against.

The same three steps in one transaction (insert the patient, find the appointment, link it if still free) with
the same write concern, token check and 201/404/403/409 outcomes; no audit, encryption, idempotency or schemas.
Served as the service is: `gunicorn -c gunicorn.conf.py bench.plain_app:app`, with the same environment.
"""
import datetime
import os

import jwt
from bson import ObjectId
from bson.errors import InvalidId
from flask import Flask, jsonify, request
from pymongo import MongoClient
from pymongo.write_concern import WriteConcern

FIELDS = ("firstName", "lastName", "dateOfBirth", "address", "insurance", "medicalHistory", "currentMedications",
          "contact")
DURABLE = WriteConcern("majority", j=True)

app = Flask(__name__)
# gunicorn loads this module in each worker (no preload), after gevent has patched the standard library.
db = MongoClient(os.environ["MONGODB_URI"], tz_aware=True).get_database(os.environ["MONGODB_DB"],
                                                                        write_concern=DURABLE)


class Refused(Exception):
    """An outcome that rolls the transaction back."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def fail(status, message, **extra):
    return jsonify(success=False, error=message, **extra), status


@app.post("/patients/add_and_link")
def add_and_link():
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    try:
        claims = jwt.decode(token, os.environ["JWT_SECRET"], algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.InvalidTokenError:
        return fail(401, "Invalid or missing bearer token")
    doctor_id = request.args.get("uid")
    if not doctor_id:
        return fail(400, "Missing doctor_id (uid)")
    if claims["sub"] != doctor_id:
        return fail(403, "Token does not allow acting for this doctor")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body.get("firstName") or not body.get("lastName"):
        return fail(400, "Missing required patient fields (firstName, lastName)")
    try:
        appointment_id = ObjectId(body.get("appointment_id"))
    except (InvalidId, TypeError):
        return fail(400, "Missing appointment_id")
    patient = {"_id": ObjectId(), "doctor_id": doctor_id, **{name: body[name] for name in FIELDS if name in body},
               "created_at": datetime.datetime.now(datetime.timezone.utc)}

    def steps(session):
        db.patients.insert_one(patient, session=session)
        appointment = db.appointments.find_one({"_id": appointment_id}, session=session)
        if appointment is None:
            return 404  # the patient is kept, as the service keeps it
        if appointment["doctor_id"] != doctor_id:
            raise Refused(403, "Doctor does not own this appointment")
        linked = db.appointments.update_one({"_id": appointment_id, "doctor_id": doctor_id, "patient_id": None},
                                            {"$set": {"patient_id": patient["_id"]}}, session=session)
        if linked.modified_count != 1:
            raise Refused(409, "Appointment already linked to a patient")
        return 201

    try:
        with db.client.start_session() as session:
            status = session.with_transaction(steps, write_concern=DURABLE)
    except Refused as refused:
        return fail(refused.status, refused.message)
    shown = {**patient, "_id": str(patient["_id"])}
    del shown["created_at"]
    if status == 404:
        return fail(404, "Appointment not found (patient created but not linked)", data=shown)
    response = jsonify(success=True, data=shown)
    response.headers["Location"] = f"/patients/{shown['_id']}"
    return response, 201
