"""The configurable forms engine.

Administrators shape the case, tracing request and trace forms (sections, fields,
lookups, locations, translations, matching tags, who sees which section) without
code; the records modules store their data through `forms.operations`, whose module
docstring lists the contract they rely on. Templates: `forms/macros.html` renders any
definition as an accessible HTML form (`render_form`) or read-only (`render_readonly`).
"""
