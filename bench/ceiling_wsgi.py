"""Bench-only WSGI app, `bench.ceiling_wsgi:app`: the service plus POST /bench/fixed, its web stack's ceiling."""
from flask import jsonify

from app import create_app
from bench.floor import PATIENT_FIELDS

# The size and shape of what add_and_link answers, so encoding and sending cost the same.
FIXED_PATIENT = {"_id": "65f8a1b2c3d4e5f6789012ef", "doctor_id": "doctor_0000", **PATIENT_FIELDS}

# The same factory as wsgi.py, so the same hooks, error handlers and request log run.
app = create_app()


@app.post("/bench/fixed")
def bench_fixed():
    """Answer a fixed patient envelope with 201, reading nothing and touching no database."""
    return jsonify({"success": True, "data": FIXED_PATIENT}), 201
