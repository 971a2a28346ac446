"""The job kinds vitalq runs: their params schema, queue, time limits and uploads.

One declaration per kind serves every door: ``GET /api/v1/kinds`` publishes it, the web
form and the command line are built from it, and submission validates against it, so
an invalid job is refused before anything is queued. The Celery task that runs a kind
carries the kind's name (``tasks/<module>.py``); the web tier sends it by that name and
never imports the computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from jsonschema import Draft202012Validator

from .exceptions import InvalidInput, NotFound

#: (params, upload size in bytes or None) -> (soft, hard) time limits in seconds.
TimeLimits = Callable[[dict[str, Any], "int | None"], "tuple[float, float]"]


@dataclass(frozen=True)
class Upload:
    """What a kind accepts as its input file."""

    required: bool
    #: Accepted file name suffixes, lower case with the dot (".npy"); empty accepts any file.
    #: The job checks the content itself: a suffix is a hint, never trusted.
    formats: tuple[str, ...]
    #: Largest accepted upload for this kind in bytes (None: the global limit).
    max_bytes: int | None = None


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    description: str
    params_schema: dict[str, Any]
    soft_time_limit_s: float
    time_limit_s: float
    upload: Upload | None = None
    #: Queue name, or a function of the params for kinds bound to a device.
    queue: str | Callable[[dict[str, Any]], str] = "cpu"
    #: Limits that depend on the input (for example scaled to a video's length).
    time_limits: TimeLimits | None = None
    #: Checks across fields that a JSON Schema cannot say; raises InvalidInput.
    check: Callable[[dict[str, Any]], None] | None = None
    _validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.params_schema)
        object.__setattr__(self, "_validator", Draft202012Validator(self.params_schema))

    def validate(self, params: Any) -> dict[str, Any]:
        """The params with defaults filled in; raises InvalidInput naming each bad field."""
        if not isinstance(params, dict):
            raise InvalidInput("params must be a JSON object", {"fields": {"params": "must be an object"}})
        errors = sorted(self._validator.iter_errors(params), key=lambda e: list(e.absolute_path))
        if errors:
            fields: dict[str, str] = {}
            for error in errors:
                if error.validator == "additionalProperties":
                    for name in set(params) - set(self.params_schema.get("properties", {})):
                        fields[name] = "is not a parameter of this job kind"
                    continue
                if error.validator == "required":
                    name = error.message.split("'")[1]
                    fields.setdefault(name, "is required")
                    continue
                path = ".".join(str(part) for part in error.absolute_path) or "params"
                fields.setdefault(path, error.message)
            summary = "; ".join(f"{name}: {message}" for name, message in fields.items())
            raise InvalidInput(f"invalid params for {self.name}: {summary}", {"fields": fields})
        filled = {
            name: spec["default"]
            for name, spec in self.params_schema.get("properties", {}).items()
            if "default" in spec
        }
        filled.update(params)
        if self.check is not None:
            self.check(filled)
        return filled

    def queue_for(self, params: dict[str, Any]) -> str:
        return self.queue(params) if callable(self.queue) else self.queue

    def limits_for(self, params: dict[str, Any], upload_size: int | None) -> tuple[float, float]:
        if self.time_limits is not None:
            return self.time_limits(params, upload_size)
        return self.soft_time_limit_s, self.time_limit_s

    def describe(self) -> dict[str, Any]:
        """The kind as ``GET /api/v1/kinds`` publishes it."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "queue": self.queue if isinstance(self.queue, str) else "hw.<device>",
            "params_schema": self.params_schema,
            "time_limits": {
                "soft_s": self.soft_time_limit_s,
                "hard_s": self.time_limit_s,
                "scaled_to_input": self.time_limits is not None,
            },
            "upload": None
            if self.upload is None
            else {"required": self.upload.required, "formats": list(self.upload.formats), "max_bytes": self.upload.max_bytes},
        }


_registry: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    if kind.name in _registry:
        raise ValueError(f"job kind {kind.name!r} is registered twice")
    _registry[kind.name] = kind
    return kind


def get_kind(name: Any) -> JobKind:
    """The kind called ``name``, as named in a submission; raises InvalidInput listing the kinds."""
    kind = _registry.get(name) if isinstance(name, str) else None
    if kind is None:
        raise InvalidInput(
            f"unknown job kind {name!r}",
            {"fields": {"kind": "unknown job kind"}, "known_kinds": sorted(_registry)},
        )
    return kind


def all_kinds() -> list[JobKind]:
    return [_registry[name] for name in sorted(_registry)]


def find_kind(name: str) -> JobKind:
    """Like get_kind, for lookups by a path segment: raises NotFound."""
    try:
        return _registry[name]
    except KeyError:
        raise NotFound(f"no job kind {name!r}") from None


# --- the kinds -------------------------------------------------------------------------

SELFTEST = register(
    JobKind(
        name="diagnostics.selftest",
        title="Self-test",
        description=(
            "Exercises the whole path of a job: a worker picks it up, computes, reports "
            "progress, writes an artifact and finishes. The deep health check runs it."
        ),
        params_schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "duration_s": {
                    "type": "number", "minimum": 0, "maximum": 600, "default": 0.2,
                    "description": "Time spent working, in seconds, spread over the steps.",
                },
                "steps": {
                    "type": "integer", "minimum": 1, "maximum": 1000, "default": 5,
                    "description": "Progress points reported along the way.",
                },
                "blocking_s": {
                    "type": "number", "minimum": 0, "maximum": 600, "default": 0,
                    "description": "Seconds spent at the start with no progress point, "
                                   "as a computation that cannot be interrupted would.",
                },
                "transient_failures": {
                    "type": "integer", "minimum": 0, "maximum": 10, "default": 0,
                    "description": "Fail with a transient fault on this many first attempts "
                                   "(each is retried with backoff).",
                },
                "soft_time_limit_s": {
                    "type": "number", "minimum": 1, "maximum": 3600, "default": 60,
                    "description": "Soft time limit of this job, in seconds.",
                },
            },
        },
        soft_time_limit_s=60,
        time_limit_s=90,
        time_limits=lambda params, _size: (params["soft_time_limit_s"], params["soft_time_limit_s"] + 30),
        upload=Upload(required=False, formats=()),
    )
)
