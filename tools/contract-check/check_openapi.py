"""Validates OpenAPI documents with openapi-spec-validator, the validator the OpenAPI tools use.

    python tools/contract-check/check_openapi.py            # the job-ledger's /openapi.json
    python tools/contract-check/check_openapi.py FILE ...   # JSON or YAML files

Prints a document's first error as ``source: openapi-spec-validator: message (at path)`` on
stderr and exits 1 if a document has one; exits 2 when a file cannot be read; prints one line
per valid document and exits 0. Only :func:`ledger_document` knows how the ledger builds it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import (
    OpenAPIValidationError,
    ValidatorDetectError,
)

from job_ledger.web.openapi import openapi_document


def ledger_document() -> dict[str, Any]:
    """Return the document the job-ledger serves at ``/openapi.json``."""
    return openapi_document()


def error_of(document: Mapping[str, Any]) -> str | None:
    """Return the first error openapi-spec-validator finds in ``document``, or None if valid.

    The first only, as the validator's own command line reports by default: once a document
    breaks the schema, the validator's further checks may stop on a crash instead of an error.
    """
    try:
        validate(document)
    except ValidatorDetectError:
        return "no 'openapi' (or 'swagger') version this validator knows"
    except OpenAPIValidationError as error:
        pointer = "".join("/" + _escaped(part) for part in error.path)
        return f"{error.message.splitlines()[0]} (at {pointer or '/'})"
    return None


def _escaped(part: object) -> str:
    """Return ``part`` as a JSON Pointer token (``~`` and ``/`` escaped)."""
    return str(part).replace("~", "~0").replace("/", "~1")


def _read(path: Path) -> Mapping[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    if not isinstance(document, Mapping):
        raise ValueError("the document is not a mapping")
    return document


def main(argv: list[str]) -> int:
    """Check the files in ``argv`` (the ledger's document if none); return the exit status."""
    documents: list[tuple[str, Mapping[str, Any]]] = []
    try:
        for name in argv:
            documents.append((name, _read(Path(name))))
    except (OSError, ValueError, yaml.YAMLError) as unreadable:
        print(f"check_openapi: {unreadable}", file=sys.stderr)
        return 2
    if not argv:
        documents.append(("job-ledger /openapi.json", ledger_document()))
    failed = False
    for source, document in documents:
        error = error_of(document)
        if error is None:
            print(f"{source}: valid OpenAPI (openapi-spec-validator)")
        else:
            print(f"{source}: openapi-spec-validator: {error}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
