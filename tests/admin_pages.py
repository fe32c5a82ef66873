"""What a browser posts for an admin page as it shows it: the admin-walking tests start from it and change one
field at a time."""

from __future__ import annotations

import datetime


def form_data(form) -> dict:
    """One form's fields as the page shows them (a ticked box as "on", a split date and time as two fields)."""
    data = {}
    for field in form:
        value = field.value()
        if value is None or value is False:
            continue
        if value is True:
            data[field.html_name] = "on"
        elif isinstance(value, list | tuple):
            data[field.html_name] = [str(item) for item in value]
        elif isinstance(value, datetime.datetime):
            data[f"{field.html_name}_0"], data[f"{field.html_name}_1"] = f"{value:%Y-%m-%d}", f"{value:%H:%M:%S}"
        else:
            data[field.html_name] = str(value)
    return data


def page_data(context) -> dict:
    """An add or change page's form, its inlines' forms and management forms, and its Save button."""
    data = {**form_data(context["adminform"].form), "_save": "Save"}
    for inline in context.get("inline_admin_formsets", []):
        formset = inline.formset
        data |= {f"{formset.prefix}-{key}": str(value) for key, value in formset.management_form.initial.items()}
        for form in formset.forms:
            data |= form_data(form)
    return data
