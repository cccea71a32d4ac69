"""Marshmallow schemas: what a request may carry, and how a result is shown."""
import datetime
import re

from marshmallow import RAISE, Schema, ValidationError, fields, validate

OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}\Z")
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
PHONE = re.compile(r"^\+?[0-9]{3,20}\Z")
NAME_MAX = 100
NOTES_MAX = 10_000
PART_MAX = 200


class TrimmedString(fields.String):
    """A string with surrounding whitespace removed before validation."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class ObjectIdString(fields.String):
    """A 24-hex ObjectId, kept as a lower-case string."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not OBJECT_ID.match(text):
            raise ValidationError("Must be a 24-character hexadecimal id.")
        return text.lower()


class BirthDate(fields.String):
    """A real calendar date YYYY-MM-DD that is not in the future, kept as sent."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            if not ISO_DATE.match(text):
                raise ValueError
            born = datetime.date.fromisoformat(text)
        except ValueError:
            raise ValidationError("Must be a calendar date YYYY-MM-DD.") from None
        # Today somewhere on Earth: UTC+14 is the furthest ahead, so a birth today there is not refused.
        latest = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=14)).date()
        if born > latest:
            raise ValidationError("Must not be in the future.")
        return text


class StrictSchema(Schema):
    """Refuse unknown fields by name."""

    class Meta:
        unknown = RAISE


def _part(max_length=PART_MAX):
    """Return an optional bounded string field of a nested object."""
    return fields.String(validate=validate.Length(max=max_length))


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
    medicalHistory = fields.String(validate=validate.Length(max=NOTES_MAX))
    currentMedications = fields.String(validate=validate.Length(max=NOTES_MAX))
    contact = fields.Nested(ContactSchema)


class AddAndLinkSchema(PatientSchema):
    """The body of POST /patients/add_and_link: a patient plus the appointment to link it to."""

    appointment_id = ObjectIdString(required=True, load_only=True)


add_and_link_request = AddAndLinkSchema()
patient_view = PatientSchema()
