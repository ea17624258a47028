"""List filters shared by record pages, the records API and exports."""
from __future__ import annotations


def person_filters(query, model, values: dict):
    """Filter on the indexed copies of the child's sex, age and location (with the places below it)."""
    if values.get("sex"):
        query = query.where(model.sex == values["sex"])
    if values.get("age_min") is not None:
        query = query.where(model.age >= values["age_min"])
    if values.get("age_max") is not None:
        query = query.where(model.age <= values["age_max"])
    if values.get("location"):
        from forms.definitions import location_descendants
        query = query.where(model.location_code.in_(location_descendants(values["location"])))
    return query
