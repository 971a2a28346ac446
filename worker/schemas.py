"""Request bodies checked against their JSON Schema, each refusal named by its field."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator


def field_errors(validator: Draft202012Validator, instance: Any, ignore: frozenset[str] = frozenset()) -> dict[str, str]:
    """What the schema refuses in ``instance``, by field: its dotted path, or for a field
    missing or unknown its name ("body" for the whole), with the schema's message. The
    keywords in ``ignore`` (``{"required"}`` for a partial update) are not checked."""
    errors: dict[str, str] = {}
    for error in validator.iter_errors(instance):
        if error.validator in ignore:
            continue
        name = ".".join(str(part) for part in error.absolute_path) or (
            error.message.split("'")[1] if error.validator in ("required", "additionalProperties") else "body")
        errors.setdefault(name, error.message)
    return errors
