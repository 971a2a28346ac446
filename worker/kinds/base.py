"""What a job kind is (``JobKind``: its params schema, queue, time limits and upload),
and the registry of kinds, by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from jsonschema import Draft202012Validator

from vitalq.errors import Forbidden, InvalidInput, NotFound

#: (params, the upload's size in bytes or None) -> (soft, hard) time limits in seconds.
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
    #: True: the kind recognises its input from the content (``check`` sniffs it), so
    #: ``formats`` only advises and any file name is accepted.
    by_content: bool = False


@dataclass(frozen=True)
class JobKind:
    name: str
    title: str
    description: str
    params_schema: dict[str, Any]
    #: Time limits, seconds; a kind whose work grows with its upload adds
    #: ``seconds_per_upload_mb`` per megabyte to them (1.5 times as many to the hard one).
    soft_time_limit_s: float
    time_limit_s: float
    seconds_per_upload_mb: float = 0.0
    upload: Upload | None = None
    #: Queue name, or a function of the params for kinds bound to a device.
    queue: str | Callable[[dict[str, Any]], str] = "cpu"
    #: Limits that the params set instead (the selftest's, which says how long it works).
    time_limits: TimeLimits | None = None
    #: Celery task names run one after the other as a chain; None: the task named like the kind.
    stages: tuple[str, ...] | None = None
    #: The queue of every stage after the first (None: the job's queue): a recording's
    #: analysis runs on the CPU pool, leaving the device free for the next recording.
    later_stages_queue: str | None = None
    #: Checks that a JSON Schema cannot say, across fields and against the uploaded
    #: file (its path, or None): raises InvalidInput or an ``ml.errors.InvalidInput``.
    check: Callable[[dict[str, Any], "Path | None"], None] | None = None
    #: Only an admin may submit it (a kind that drives shared hardware: a camera's worker
    #: opens whatever its registered connection names).
    admin_only: bool = False
    #: Params only an admin may set: fault injection, for tests and operators.
    admin_params: frozenset[str] = frozenset()
    #: The params most users set, in the order a form shows them first (the rest under
    #: "More parameters"); empty: every param alike.
    main_params: tuple[str, ...] = ()
    _validator: Draft202012Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.params_schema)
        unknown = set(self.main_params) - set(self.params_schema.get("properties", {}))
        if unknown:
            raise ValueError(f"{self.name}: main_params names no param: {sorted(unknown)}")
        object.__setattr__(self, "_validator", Draft202012Validator(self.params_schema))

    def check_role(self, params: Any, admin: bool) -> None:
        """Raises Forbidden if a user who is not an admin submits an admin-only kind, or
        sets a param only admins may (``params`` as submitted, before defaults)."""
        if admin:
            return
        if self.admin_only:
            raise Forbidden(f"only an admin may submit {self.name}")
        reserved = sorted(self.admin_params & set(params)) if isinstance(params, dict) else []
        if reserved:
            raise Forbidden(f"{', '.join(reserved)}: only an admin may set {'it' if len(reserved) == 1 else 'them'} "
                            "(fault injection, for tests and operators)",
                            {"fields": {name: "admin only" for name in reserved}})

    def validate(self, params: Any, upload: Path | None = None) -> dict[str, Any]:
        """The params with defaults filled in, checked against the schema and then by
        ``check`` (with the uploaded file); raises InvalidInput naming each bad field."""
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
            summary = "; ".join(f"{name}: {message}" for name, message in list(fields.items())[:5])
            more = f"; and {len(fields) - 5} more" if len(fields) > 5 else ""
            raise InvalidInput(f"invalid params for {self.name}: {summary}{more}", {"fields": fields})
        filled = {
            name: spec["default"]
            for name, spec in self.params_schema.get("properties", {}).items()
            if "default" in spec
        }
        filled.update(params)
        if self.check is not None:
            self.check(filled, upload)
        return filled

    def queue_for(self, params: dict[str, Any]) -> str:
        return self.queue(params) if callable(self.queue) else self.queue

    def limits_for(self, params: dict[str, Any], upload_bytes: int | None) -> tuple[float, float]:
        """Soft and hard time limits, seconds, of a job with these params and an upload
        of ``upload_bytes`` (None: no upload)."""
        if self.time_limits is not None:
            return self.time_limits(params, upload_bytes)
        extra = (upload_bytes or 0) / 1e6 * self.seconds_per_upload_mb
        return self.soft_time_limit_s + extra, self.time_limit_s + 1.5 * extra

    def describe(self) -> dict[str, Any]:
        """The kind as ``GET /api/v1/kinds`` publishes it."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "queue": self.queue if isinstance(self.queue, str) else "hw.<device>",
            "params_schema": self.params_schema,
            "main_params": list(self.main_params),
            # Each job carries the limits it runs under; these are those of an empty upload.
            "time_limits": {
                "soft_s": self.soft_time_limit_s,
                "hard_s": self.time_limit_s,
                "seconds_per_upload_mb": self.seconds_per_upload_mb,
                "set_by_params": self.time_limits is not None,
            },
            "stages": list(self.stages or (self.name,)),
            "later_stages_queue": self.later_stages_queue,
            "upload": None
            if self.upload is None
            else {"required": self.upload.required, "formats": list(self.upload.formats),
                  "max_bytes": self.upload.max_bytes, "by_content": self.upload.by_content},
        }


def device_bound(device_type: str, device_description: str,
                 **properties: dict[str, Any]) -> tuple[dict[str, Any], Callable[[dict[str, Any], Any], None]]:
    """The params schema and the submission check of a kind that runs on one registered
    device of ``device_type`` (``camera``, ``pulse_sensor``): ``device``, its id, which
    must name such a device; ``trigger``, a user or the device's schedule (beat's);
    and the kind's own ``properties``."""
    from ..devices import DEVICE_ID_PATTERN

    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["device"],
        "properties": {
            "device": {"type": "string", "pattern": DEVICE_ID_PATTERN, "description": device_description,
                       "x-device-type": device_type},
            **properties,
            "trigger": {"enum": ["manual", "schedule"], "default": "manual",
                        "description": "What asked for the job: a user, or the device's schedule."},
        },
    }

    def check(params: dict[str, Any], _upload: Path | None) -> None:
        from .. import devices

        devices.require(params["device"], device_type)

    return schema, check


_registry: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    if kind.name in _registry:
        raise ValueError(f"job kind {kind.name!r} is registered twice")
    _registry[kind.name] = kind
    return kind


def get_kind(name: Any) -> JobKind:
    """The kind called ``name``, as named in a submission; raises InvalidInput listing the kinds."""
    if name is None:
        raise InvalidInput("give the job's kind", {"fields": {"kind": "is required"}, "known_kinds": sorted(_registry)})
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
