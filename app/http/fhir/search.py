"""What a FHIR request asks: the format it accepts, and its parameters, each checked and turned into the service's."""
import datetime
import re
from typing import Any

from flask import request
from marshmallow import ValidationError, fields, validate

from app.http.refusals import UnsupportedFormat
from app.service.schemas import (
    NAME_MAX,
    PAGE_DEFAULT,
    PAGE_MAX,
    BirthDate,
    StrictSchema,
    Text,
    doctor_uid,
    page_cursor,
)
from app.store.cursors import HEX_ID

# The media types the view answers in: FHIR JSON, also asked for as plain JSON or by its older name.
SERVED_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
# FHIR's _format takes a media type or a short name; only JSON's are served (406 for any other).
SERVED_FORMATS = ("json", *SERVED_TYPES)
# The one parameter a search may give twice: two bounds of a time range (date=ge...&date=le...).
REPEATABLE = ("date",)
# FHIR's _total asks how exactly to count the matches (http://hl7.org/fhir/R4/search.html#total).
TOTAL_ASKS = ("none", "estimate", "accurate")
DATE_BOUNDS_MAX = 2
UTC = datetime.timezone.utc
EARLIEST = datetime.datetime.min.replace(tzinfo=UTC)
LATEST = datetime.datetime.max.replace(tzinfo=UTC)

# FHIR's date search value: a prefix, then a year, a month, a day or a moment with its zone. Days are written per
# month, so that the pattern allows no 31 April; 29 February of a year without one is a day no appointment is on.
_YEAR = "(0[0-9]{2}[1-9]|0[0-9][1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_MONTH = "(0[1-9]|1[0-2])"
_MONTH_DAY = "((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-9])|(0[13-9]|1[0-2])-30|(0[13578]|1[02])-31)"
_TIME = r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
DATE_SEARCH = re.compile(rf"^(eq|ge|gt|le|lt)?{_YEAR}(-{_MONTH}|-{_MONTH_DAY}({_TIME})?)?\Z")
# A reference to one of the doctor's patients: `Patient/<id>`, or the bare id.
PATIENT_REFERENCE = re.compile(rf"^(Patient/)?{HEX_ID}\Z")
# A name search: FHIR reads a comma as "or", which the view does not serve, so a name holds none (nor controls).
NAME_SEARCH = re.compile(r"^[^,\x00-\x1f\x7f-\x9f]*\Z")


def refuse_formats_not_served() -> None:
    """Refuse (406) a request whose _format, or else whose Accept, asks for something other than FHIR JSON."""
    asked = _format_asked()
    if asked is not None:
        if asked not in SERVED_FORMATS:
            raise UnsupportedFormat()
        return
    accepted = request.accept_mimetypes
    if accepted.provided and accepted.best_match(SERVED_TYPES) is None:
        raise UnsupportedFormat()


def _format_asked() -> str | None:
    """Return the _format asked for, its `+` kept even when sent unencoded (`_format=application/fhir+json`)."""
    asked = request.args.get("_format")
    return None if asked is None else asked.replace(" ", "+")


def query_parameters() -> dict[str, Any]:
    """Return the query parameters, `date` as a list; refuse (400) any other given more than once."""
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1 and name not in REPEATABLE)
    if repeated:
        raise ValidationError({name: ["Given more than once."] for name in repeated})
    parameters: dict[str, Any] = {name: values if name in REPEATABLE else values[0]
                                  for name, values in request.args.lists()}
    if "_format" in parameters:
        parameters["_format"] = _format_asked()
    return parameters


def _name_search(description: str) -> Text:
    """Return a name search parameter: the start of a name, as the REST search's `q` takes it."""
    return Text(validate=[validate.Length(min=1, max=NAME_MAX),
                          validate.Regexp(NAME_SEARCH, error="Must hold no comma (FHIR's `or` is not served).")],
                metadata={"description": description})


class FormatQuery(StrictSchema):
    """What every FHIR interaction takes: the format."""

    format = fields.String(data_key="_format", validate=validate.OneOf(SERVED_FORMATS),
                           metadata={"description": "FHIR JSON only; any other format answers 406"})


class FhirQuery(FormatQuery):
    """What every FHIR interaction on records takes: the format, and the doctor (the token's subject unless named)."""

    uid = doctor_uid(metadata={"description": "The doctor whose records to read: by default the token's subject; "
                                              "another doctor only with an admin token"})


class FhirPageQuery(FhirQuery):
    """What a FHIR interaction answering a Bundle page takes."""

    count = fields.Integer(data_key="_count", load_default=PAGE_DEFAULT, validate=validate.Range(min=1, max=PAGE_MAX),
                           metadata={"description": f"Entries per page, 1 to {PAGE_MAX}"})
    after = page_cursor(metadata={"description": "Where the page starts: given in the `next` link"})


class FhirSearchQuery(FhirPageQuery):
    """What a FHIR search takes beyond a page: `_count=0` for the total alone, and FHIR's `_total`."""

    count = fields.Integer(data_key="_count", load_default=PAGE_DEFAULT, validate=validate.Range(min=0, max=PAGE_MAX),
                           metadata={"description": f"Entries per page, 0 to {PAGE_MAX}; 0 answers the total alone"})
    # Every search counts its matches exactly, so each of FHIR's three asks gets the same accurate total.
    total = fields.String(data_key="_total", validate=validate.OneOf(TOTAL_ASKS),
                          metadata={"description": "none, estimate or accurate: the total is always accurate"})


class PatientSearchQuery(FhirSearchQuery):
    """FHIR's Patient search parameters the view serves."""

    name = _name_search("The start of a first or last name, any case, from 3 characters; shorter, a whole name")
    family = _name_search("The start of the last name, likewise")
    given = _name_search("The start of the first name, likewise")
    birthdate = BirthDate(metadata={"description": "The date of birth, exactly"})


class AppointmentSearchQuery(FhirSearchQuery):
    """FHIR's Appointment search parameters the view serves."""

    patient = fields.String(validate=validate.Regexp(PATIENT_REFERENCE, error="Must be Patient/<24-hex id>."),
                            metadata={"description": "The patient's appointments: Patient/<id>"})
    date = fields.List(fields.String(validate=validate.Regexp(DATE_SEARCH, error="Not a FHIR date search value.")),
                       validate=validate.Length(min=1, max=DATE_BOUNDS_MAX),
                       metadata={"description": "The start, prefixed ge, gt, le, lt or eq (none: eq); twice for a "
                                                "range; a date without a zone is in UTC"})


format_query = FormatQuery()
read_query = FhirQuery()
page_query = FhirPageQuery()
patient_search_query = PatientSearchQuery()
appointment_search_query = AppointmentSearchQuery()


def patient_search(query: dict[str, Any]) -> dict[str, Any]:
    """Return a Patient search as the service's patient search takes it."""
    return {"name": query.get("name"), "family": query.get("family"), "given": query.get("given"),
            "dateOfBirth": query.get("birthdate"), "limit": query["count"], "after": query.get("after")}


def appointment_search(query: dict[str, Any]) -> dict[str, Any]:
    """Return an Appointment search as the service's appointment search takes it."""
    patient = query.get("patient")
    starts_from, starts_before = date_range(query.get("date", []))
    return {"patient_id": None if patient is None else patient.removeprefix("Patient/").lower(),
            "starts_from": starts_from, "starts_before": starts_before, "limit": query["count"],
            "after": query.get("after")}


def date_range(values: list[str]) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """Return the moments a start must be at or after, and before, for every date search value to hold."""
    starts_from: datetime.datetime | None = None
    starts_before: datetime.datetime | None = None
    for value in values:
        if not DATE_SEARCH.match(value):
            raise ValidationError({"date": ["Not a FHIR date search value."]})
        prefix = value[:2] if value[:2].isalpha() else "eq"
        first, after_last = _interval(value[len(prefix):] if value[:2].isalpha() else value)
        # A moment within the value's precision: ge from its first, gt after its last, le to its last, lt before it.
        lower = {"ge": first, "gt": after_last, "eq": first}.get(prefix)
        upper = {"le": after_last, "lt": first, "eq": after_last}.get(prefix)
        if lower is not None:
            starts_from = lower if starts_from is None else max(starts_from, lower)
        if upper is not None:
            starts_before = upper if starts_before is None else min(starts_before, upper)
    return starts_from, starts_before


def _interval(value: str) -> tuple[datetime.datetime, datetime.datetime]:
    """Return the first moment a date search value stands for and the first one after it, in UTC."""
    if len(value) == 4:
        year = int(value)
        return _utc(year, 1, 1), _utc(year + 1, 1, 1)
    if len(value) == 7:
        year, month = int(value[:4]), int(value[5:7])
        return _utc(year, month, 1), _utc(year + (month == 12), month % 12 + 1, 1)
    try:
        if len(value) == 10:
            day = datetime.date.fromisoformat(value)
            return _utc(day.year, day.month, day.day), _shifted(_utc(day.year, day.month, day.day), days=1)
        return _moment(value)
    except ValueError:
        # 29 February of a year that has none: no moment is within it, the first of March follows it.
        march = _utc(int(value[:4]), 3, 1)
        return march, march


def _utc(year: int, month: int, day: int) -> datetime.datetime:
    """Return midnight UTC of a date, the latest moment a datetime holds for a year past 9999."""
    return LATEST if year > datetime.MAXYEAR else datetime.datetime(year, month, day, tzinfo=UTC)


def _shifted(moment: datetime.datetime, **delta: float) -> datetime.datetime:
    """Return a moment moved by a time span, held within the moments a datetime holds."""
    try:
        return moment + datetime.timedelta(**delta)
    except OverflowError:
        return LATEST if sum(delta.values()) > 0 else EARLIEST


def _moment(value: str) -> tuple[datetime.datetime, datetime.datetime]:
    """Return the moment a date search value names with its zone, and the first one after its precision, in UTC."""
    local, rest, fraction = value[:19], value[19:], ""
    if rest.startswith("."):
        digits = re.match(r"\.([0-9]+)", rest)
        assert digits is not None  # DATE_SEARCH let only digits follow the point
        fraction, rest = digits.group(1), rest[digits.end():]
    offset = datetime.timedelta() if rest == "Z" else (
        (1 if rest[0] == "+" else -1) * datetime.timedelta(hours=int(rest[1:3]), minutes=int(rest[4:6])))
    written = datetime.datetime.fromisoformat(local).replace(tzinfo=UTC)
    first = _shifted(written, microseconds=int(fraction[:6].ljust(6, "0")) if fraction else 0)
    # The zone's offset moved to UTC: a moment of year 1 east of Greenwich, or of 9999 west, is held at the edge.
    first = _shifted(first, seconds=-offset.total_seconds())
    # BSON keeps milliseconds: a fraction's precision is at least a millisecond, a whole second's a second.
    return first, _shifted(first, milliseconds=1) if fraction else _shifted(first, seconds=1)
