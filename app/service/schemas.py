"""Marshmallow schemas: what a request may carry, and how a result is shown."""
import copy
import datetime
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.store.cursors import CURSOR, HEX_ID

OBJECT_ID = re.compile(rf"^{HEX_ID}\Z")
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
PHONE = re.compile(r"^\+?[0-9]{3,20}\Z")
# A doctor's uid: printable ASCII without spaces, so doctor_uid_123 and Firebase uids fit and a uid never
# hides a control character, a look-alike space or a line break from the person reading the audit trail.
DOCTOR_UID = re.compile(r"^[!-~]{1,128}\Z")
UID_RULE = "Must be 1 to 128 printable ASCII characters without spaces."
# C0 controls, DEL and C1 controls: never in a name or an address; free text keeps tab, CR and LF.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
FREE_TEXT_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
NAME_MAX = 100
NOTES_MAX = 10_000
PART_MAX = 200
REASON_MAX = 500
UID_MAX = 128
CURSOR_MAX = 200
PAGE_DEFAULT = 50
PAGE_MAX = 200


def utc_text(moment: datetime.datetime) -> str:
    """Return a moment as ISO 8601 UTC text ending in `Z`, with milliseconds when it has any."""
    moment = moment.astimezone(datetime.timezone.utc)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def as_stored(value: Any) -> Any:
    """Return a value another program stored (JSON's own values and moments, at any depth) with its moments as text."""
    if isinstance(value, datetime.datetime):
        return utc_text(value)
    if isinstance(value, list):
        return [as_stored(item) for item in value]
    if isinstance(value, dict):
        return {name: as_stored(member) for name, member in value.items()}
    return value


class StoredString(fields.String):
    """A string as this service writes it; shown as stored when another program wrote a value of another type."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return super()._serialize(value, attr, obj, **kwargs) if isinstance(value, str) else as_stored(value)


class Text(StoredString):
    """A string without control characters; free text may keep tabs and line breaks."""

    def __init__(self, *, free_text: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.forbidden = FREE_TEXT_CONTROL_CHARACTERS if free_text else CONTROL_CHARACTERS

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if self.forbidden.search(text):
            raise ValidationError("Must not contain control characters.")
        return text


class TrimmedString(Text):
    """A single-line string with surrounding whitespace removed before validation."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


class ObjectIdString(fields.String):
    """A 24-hex ObjectId, kept as a lower-case string."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not OBJECT_ID.match(text):
            raise ValidationError("Must be a 24-character hexadecimal id.")
        return text.lower()


class BirthDate(fields.String):
    """A real calendar date YYYY-MM-DD that is not in the future, kept as sent."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        born = calendar_date(text)
        if born is None:
            raise ValidationError("Must be a calendar date YYYY-MM-DD.")
        if born > latest_birth_date():
            raise ValidationError("Must not be in the future.")
        return text


def calendar_date(value: Any) -> datetime.date | None:
    """Return the date a YYYY-MM-DD text names, or None for anything else (another form, or no such day)."""
    if not isinstance(value, str) or not ISO_DATE.match(value):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:  # 2023-02-30
        return None


def latest_birth_date() -> datetime.date:
    """Return today somewhere on Earth: UTC+14 is the furthest ahead, so a birth today there is not refused."""
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=14)).date()


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time with a time zone, stored as UTC at millisecond precision, shown with `Z`.

    A value of another type that another program stored (text, a number, null) is shown as stored.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> datetime.datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = moment.astimezone(datetime.timezone.utc)
        except OverflowError:
            # 0001-01-01T00:00+01:00 is well-formed, but its UTC falls before the first year a datetime holds.
            raise ValidationError("Must fall within the years 0001 to 9999 in UTC.") from None
        # BSON keeps milliseconds: truncate now so what we return is what a later read returns.
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return as_stored(value)


class StrictSchema(Schema):
    """Refuse unknown fields by name."""

    class Meta:
        unknown = RAISE


def _part(max_length: int = PART_MAX) -> Text:
    """Return an optional bounded string field of a nested object."""
    return Text(validate=validate.Length(max=max_length))


class AddressSchema(StrictSchema):
    street = _part()
    city = _part()
    state = _part()
    zipCode = _part(20)


class InsuranceSchema(StrictSchema):
    provider = _part()
    policyNumber = _part()


class ContactSchema(StrictSchema):
    phone = fields.String(validate=validate.Regexp(PHONE, error="Must be digits with an optional leading +."))
    email = fields.String(validate=[validate.Length(max=254), validate.Email(error="Not a valid email address.")])


class PatientSchema(StrictSchema):
    """A patient as stored and returned; `_id` and `doctor_id` are set by the service, never by a caller."""

    id = fields.String(attribute="_id", data_key="_id", dump_only=True)
    doctor_id = fields.String(dump_only=True)
    firstName = TrimmedString(required=True, validate=validate.Length(min=1, max=NAME_MAX))
    lastName = TrimmedString(required=True, validate=validate.Length(min=1, max=NAME_MAX))
    dateOfBirth = BirthDate()
    address = fields.Nested(AddressSchema)
    insurance = fields.Nested(InsuranceSchema)
    medicalHistory = Text(free_text=True, validate=validate.Length(max=NOTES_MAX))
    currentMedications = Text(free_text=True, validate=validate.Length(max=NOTES_MAX))
    contact = fields.Nested(ContactSchema)


class PatientVersionSchema(PatientSchema):
    """One version of a patient in its history: the whole record as it was, its version, when and by whom."""

    version = fields.Integer(dump_only=True)
    at = UtcDateTime(dump_only=True)
    actor = fields.String(dump_only=True, allow_none=True)


def merge_patch_errors(patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Return, by field, what a JSON Merge Patch of this schema's record may not do; empty when it may be applied.

    What it sets must pass the field's own rules, what it removes (null) must be optional, and a name the schema
    does not take (an unknown field, `_id`, `doctor_id`) is refused as add_and_link refuses it.
    """
    taken = {field.data_key or name: field for name, field in schema.load_fields.items()}
    errors: dict[str, Any] = {}
    for key, value in patch.items():
        field = taken.get(key)
        if field is None:
            errors[key] = ["Unknown field."]
        elif value is None:
            if field.required:
                errors[key] = ["May not be removed."]
        elif isinstance(field, fields.Nested) and isinstance(value, dict):
            # A nested object merges into the stored one: its members are checked one by one, nulls included.
            nested = merge_patch_errors(value, field.schema)
            if nested:
                errors[key] = nested
        else:
            try:
                field.deserialize(value, key, patch)
            except ValidationError as error:
                errors[key] = error.messages
    return errors


def merge_patch_schema(schema_class: type[Schema]) -> type[Schema]:
    """Return a schema class stating what a merge patch of schema_class may hold: nothing required, optionals null."""
    # Built from the same fields, for the document only: check_patient_patch is what a request is held to.
    declared = {}
    for name, field in schema_class._declared_fields.items():
        if field.dump_only:
            continue
        patched = copy.copy(field)
        patched.required = False
        patched.allow_none = not field.required
        if isinstance(patched, fields.Nested):
            # The service's nested fields each name a schema class (AddressSchema, ...), never an instance or a name.
            assert isinstance(patched.nested, type) and issubclass(patched.nested, Schema)
            patched.nested = merge_patch_schema(patched.nested)
            patched._schema = None
        declared[name] = patched
    return type(schema_class.__name__.removesuffix("Schema") + "PatchSchema", (StrictSchema,),
                {**declared, "__doc__": f"A JSON Merge Patch of {schema_class.__name__.removesuffix('Schema')}."})


def check_patient_patch(patch: dict[str, Any]) -> dict[str, Any]:
    """Refuse (400, by field) a merge patch of a patient before any record is read."""
    errors = merge_patch_errors(patch, patient_view)
    if errors:
        raise ValidationError(errors)
    return patch


PatientPatchSchema = merge_patch_schema(PatientSchema)


class AddAndLinkSchema(PatientSchema):
    """The body of POST /patients/add_and_link: a patient plus the appointment to link it to."""

    appointment_id = ObjectIdString(required=True, load_only=True)


# What the document says of an appointment's date and reason: the service writes them, but so does the clinic's
# scheduler, whose values are shown as stored.
STORED_DATE = ("When, in UTC. An appointment written by another program (the clinic's scheduler) shows its date as "
               "stored (text, a number, null), or leaves it out when JSON cannot carry it")
STORED_REASON = ("Why the patient comes. An appointment written by another program shows its reason as stored, "
                 "or leaves it out when JSON cannot carry it")


class AppointmentSchema(StrictSchema):
    """An appointment as created and returned; it is always created without a patient."""

    id = fields.String(attribute="_id", data_key="_id", dump_only=True)
    doctor_id = fields.String(dump_only=True)
    patient_id = StoredString(dump_only=True, allow_none=True)
    date = UtcDateTime(required=True, metadata={"description": STORED_DATE})
    reason = Text(free_text=True, validate=validate.Length(max=REASON_MAX), metadata={"description": STORED_REASON})


class LinkPatientSchema(StrictSchema):
    """The body of PUT /appointments/<id>/patient: the doctor's existing patient to link."""

    patient_id = ObjectIdString(required=True)


def doctor_uid(**options: Any) -> fields.String:
    """Return the query parameter naming a doctor by uid, as every route that takes one checks it."""
    return fields.String(validate=[validate.Length(min=1, max=UID_MAX), validate.Regexp(DOCTOR_UID, error=UID_RULE)],
                         **options)


def page_cursor(**options: Any) -> fields.String:
    """Return the query parameter a page starts after: a cursor this service issued."""
    return fields.String(validate=[validate.Length(min=1, max=CURSOR_MAX),
                                   validate.Regexp(CURSOR, error="Not a cursor this service issued.")], **options)


class DoctorQuery(StrictSchema):
    """Query parameters of a request made for one doctor."""

    uid = doctor_uid(required=True)


class ListingQuery(DoctorQuery):
    """Query parameters of a paginated list."""

    limit = fields.Integer(load_default=PAGE_DEFAULT, validate=validate.Range(min=1, max=PAGE_MAX))
    after = page_cursor()


class AppointmentListQuery(ListingQuery):
    linked = fields.Boolean(truthy={"true"}, falsy={"false"})


NAME_SEARCH = ("The start of a first or last name, in any case, from 3 characters; shorter, a whole name (`Li` finds "
               "Li, not Lina)")


class PatientListQuery(ListingQuery):
    q = Text(validate=validate.Length(min=1, max=NAME_MAX), metadata={"description": NAME_SEARCH})
    dateOfBirth = BirthDate()


TRAIL_DOCTOR = ("Whose trail this record is in: the doctor acted for; for a refused attempt that named no doctor its "
                "caller may act for (none, or another's), the caller's own")
NAMED_DOCTOR = "Only on a refused attempt in its caller's own trail: the other doctor's uid it named"


class AuditTargetsSchema(StrictSchema):
    patient_id = fields.String()
    appointment_id = fields.String()
    # A read of a list (a FHIR search) names every record it answered.
    patient_ids = fields.List(fields.String())
    appointment_ids = fields.List(fields.String())


class AuditRecordSchema(StrictSchema):
    """One audit record: who did what to which ids, for which doctor, with what outcome."""

    id = fields.String(attribute="_id", data_key="_id", dump_only=True)
    at = UtcDateTime(dump_only=True)
    actor = fields.String(dump_only=True)
    doctor_id = fields.String(dump_only=True, metadata={"description": TRAIL_DOCTOR})
    named_doctor = fields.String(dump_only=True, metadata={"description": NAMED_DOCTOR})
    action = fields.String(dump_only=True)
    targets = fields.Nested(AuditTargetsSchema, dump_only=True)
    # Names only, e.g. `contact.phone`, and only on a change: never the values.
    changed = fields.List(fields.String(), attribute="fields", data_key="fields", dump_only=True)
    outcome = fields.Integer(dump_only=True)
    request_id = fields.String(dump_only=True)


class ProbeSchema(Schema):
    """What a health probe answers in `data`."""

    status = fields.String(required=True)


add_and_link_request = AddAndLinkSchema()
patient_view = PatientSchema()
# Checks a corrected patient (the stored record with a merge patch applied) by the rules add_and_link applies.
patient_fields = PatientSchema()
patient_version_view = PatientVersionSchema()
appointment_request = AppointmentSchema()
appointment_view = AppointmentSchema()
link_patient_request = LinkPatientSchema()
doctor_query = DoctorQuery()
appointment_list_query = AppointmentListQuery()
patient_list_query = PatientListQuery()
listing_query = ListingQuery()
audit_record_view = AuditRecordSchema()
