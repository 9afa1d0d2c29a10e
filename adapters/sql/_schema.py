"""The OpenEMR-like legacy schema the shipped mapping and the Synthea seed loader target.

It is a small, faithful subset of OpenEMR's tables, written as SQLAlchemy ``MetaData`` so the
same definition creates it on SQLite, PostgreSQL and MariaDB. The quirks are deliberate, because
they are what a real legacy database looks like:

* ``patient_data`` is keyed by the integer ``pid``; ``pubpid`` is the MRN shown to people.
* Codes are ``SYSTEM:code`` strings (``SNOMED-CT:44054006``); a column may hold several,
  separated by ``;`` (``lists.diagnosis``). ``prescriptions.rxnorm_drugcode`` holds a bare code.
* Visits are linked by ``form_encounter.encounter`` (a visit number), not by the row ``id``.
* Rows are soft-deleted: ``activity = 0`` hides them; the row stays.
* Vital signs are one wide ``form_vitals`` row per measurement time (blood pressure as text).
* Empty strings stand in for unknown values as often as NULL does.

Tables (columns in order; all ids are integers)::

    users              id, username, fname, lname, npi, active (1/0)
    facility           id, name, identifier
    patient_data       pid, pubpid, fname, lname, mname, DOB (date), sex (Male/Female/...),
                       street, city, state, postal_code, phone_home, email,
                       deceased_date (datetime), providerID (-> users.id),
                       allow_health_info_ex ('YES'/'NO'/''), activity
    form_encounter     id, encounter (unique visit number), pid, date, date_end, reason,
                       class_code (AMB/EMER/IMP...), encounter_type_code ('SNOMED-CT:x'),
                       encounter_type_text, facility (name), facility_id, provider_id, activity
    lists              id, pid, type ('medical_problem'|'allergy'|'medication'), subtype, title,
                       diagnosis ('SYS:code;SYS:code'), date, begdate, enddate, reaction,
                       severity_al, verification, encounter, activity
    prescriptions      id, patient_id, encounter, date_added, start_date, end_date, drug,
                       rxnorm_drugcode, dosage, route, active (1/0), intent, provider_id, activity
    procedure_order    procedure_order_id, patient_id, encounter_id, date_ordered, order_status,
                       provider_id, activity
    procedure_result   procedure_result_id, procedure_order_id, result_code ('LOINC:x'),
                       result_text, date, result (text), units, range, abnormal, result_status,
                       activity
    form_vitals        id, pid, encounter, date, bps, bpd (text), weight (kg), height (cm),
                       temperature (Cel), pulse, respiration, oxygen_saturation (%), BMI,
                       activity
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = ["METADATA", "TABLE_ORDER"]

METADATA = sa.MetaData()
"""Every table of the legacy schema."""

# MariaDB: InnoDB with utf8mb4, so names outside Latin-1 survive and foreign data round-trips.
_MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def _activity() -> sa.Column[int]:
    return sa.Column("activity", sa.SmallInteger, nullable=False, server_default="1")


sa.Table(
    "users",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(255), nullable=False, unique=True),
    sa.Column("fname", sa.String(255)),
    sa.Column("lname", sa.String(255)),
    sa.Column("npi", sa.String(15), unique=True),
    sa.Column("active", sa.SmallInteger, nullable=False, server_default="1"),
    **_MYSQL,
)

sa.Table(
    "facility",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(255)),
    sa.Column("identifier", sa.String(255), unique=True),
    **_MYSQL,
)

sa.Table(
    "patient_data",
    METADATA,
    sa.Column("pid", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("pubpid", sa.String(255), nullable=False, unique=True),
    sa.Column("fname", sa.String(255)),
    sa.Column("lname", sa.String(255)),
    sa.Column("mname", sa.String(255)),
    sa.Column("DOB", sa.Date),
    sa.Column("sex", sa.String(30)),
    sa.Column("street", sa.String(255)),
    sa.Column("city", sa.String(255)),
    sa.Column("state", sa.String(255)),
    sa.Column("postal_code", sa.String(255)),
    sa.Column("phone_home", sa.String(255)),
    sa.Column("email", sa.String(255)),
    sa.Column("deceased_date", sa.DateTime),
    sa.Column("providerID", sa.Integer),
    sa.Column("allow_health_info_ex", sa.String(3), nullable=False, server_default=""),
    _activity(),
    **_MYSQL,
)

sa.Table(
    "form_encounter",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("encounter", sa.BigInteger, nullable=False, unique=True),
    sa.Column("pid", sa.Integer, nullable=False, index=True),
    sa.Column("date", sa.DateTime),
    sa.Column("date_end", sa.DateTime),
    sa.Column("reason", sa.Text),
    sa.Column("class_code", sa.String(10)),
    sa.Column("encounter_type_code", sa.String(64)),
    sa.Column("encounter_type_text", sa.String(255)),
    sa.Column("facility", sa.String(255)),
    sa.Column("facility_id", sa.Integer),
    sa.Column("provider_id", sa.Integer),
    _activity(),
    **_MYSQL,
)

sa.Table(
    "lists",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False, index=True),
    sa.Column("type", sa.String(255), nullable=False),
    sa.Column("subtype", sa.String(31)),
    sa.Column("title", sa.String(255)),
    sa.Column("diagnosis", sa.String(255)),
    sa.Column("date", sa.DateTime),
    sa.Column("begdate", sa.DateTime),
    sa.Column("enddate", sa.DateTime),
    sa.Column("reaction", sa.String(255)),
    sa.Column("severity_al", sa.String(50)),
    sa.Column("verification", sa.String(36)),
    sa.Column("encounter", sa.BigInteger),
    _activity(),
    **_MYSQL,
)

sa.Table(
    "prescriptions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("patient_id", sa.Integer, nullable=False, index=True),
    sa.Column("encounter", sa.BigInteger),
    sa.Column("date_added", sa.DateTime),
    sa.Column("start_date", sa.Date),
    sa.Column("end_date", sa.Date),
    sa.Column("drug", sa.String(255)),
    sa.Column("rxnorm_drugcode", sa.String(25)),
    sa.Column("dosage", sa.String(255)),
    sa.Column("route", sa.String(100)),
    sa.Column("active", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("intent", sa.String(20)),
    sa.Column("provider_id", sa.Integer),
    _activity(),
    **_MYSQL,
)

sa.Table(
    "procedure_order",
    METADATA,
    sa.Column("procedure_order_id", sa.Integer, primary_key=True),
    sa.Column("patient_id", sa.Integer, nullable=False, index=True),
    sa.Column("encounter_id", sa.BigInteger),
    sa.Column("date_ordered", sa.DateTime),
    sa.Column("order_status", sa.String(31)),
    sa.Column("provider_id", sa.Integer),
    _activity(),
    **_MYSQL,
)

sa.Table(
    "procedure_result",
    METADATA,
    sa.Column("procedure_result_id", sa.Integer, primary_key=True),
    sa.Column("procedure_order_id", sa.Integer, nullable=False, index=True),
    sa.Column("result_code", sa.String(64)),
    sa.Column("result_text", sa.String(255)),
    sa.Column("date", sa.DateTime),
    sa.Column("result", sa.String(255)),
    sa.Column("units", sa.String(31)),
    sa.Column("range", sa.String(255)),
    sa.Column("abnormal", sa.String(31)),
    sa.Column("result_status", sa.String(31)),
    _activity(),
    **_MYSQL,
)

sa.Table(
    "form_vitals",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False, index=True),
    sa.Column("encounter", sa.BigInteger),
    sa.Column("date", sa.DateTime),
    sa.Column("bps", sa.String(40)),
    sa.Column("bpd", sa.String(40)),
    sa.Column("weight", sa.Double),
    sa.Column("height", sa.Double),
    sa.Column("temperature", sa.Double),
    sa.Column("pulse", sa.Double),
    sa.Column("respiration", sa.Double),
    sa.Column("oxygen_saturation", sa.Double),
    sa.Column("BMI", sa.Double),
    _activity(),
    **_MYSQL,
)

TABLE_ORDER = tuple(t.name for t in METADATA.sorted_tables)
"""Table names in creation order."""
