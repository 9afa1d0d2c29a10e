"""Mapping files shipped with the SQL adapter (``openemr.yaml``), selectable by name."""
