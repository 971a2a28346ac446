"""The OpenAPI 3.1 description of ``/api/v1``, published at ``/api/v1/openapi.json``.

Written out here rather than generated: the API is small, and its request schemas come
from the declarations that validate requests (device schema, job kinds), so the
description and the validation cannot drift apart. ``tests/test_openapi.py`` fuzzes
the API against it with schemathesis.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from worker.devices import DEVICE_SCHEMA, PLAN_SCHEMA
from worker.storage import DIRECT_UPLOAD_SCHEMA
from worker.kinds import all_kinds
from worker.models import JobStatus

bp = Blueprint("openapi", __name__)

NULLABLE_STR = {"type": ["string", "null"]}
TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    reasons = {400: "Invalid input, each bad field named", 401: "No valid token", 403: "For admins only",
               404: "Not found", 409: "Conflict with the job's state, or with an Idempotency-Key's first request",
               413: "Too large", 415: "Unsupported format",
               429: "Too many requests, or jobs waiting; see Retry-After", 503: "A service is unavailable; retry later"}
    return {str(status): _json(_ref("Error"), reasons[status]) for status in statuses}


#: A client's key for a submission it may have to send again (``worker.idempotency``).
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "description": "Sent again with a repeat of this submission: answered with the first one's job(s).",
                   "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"}}


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


JOB_ID = _path_param("job_id", {"type": "string", "minLength": 1, "maxLength": 64})
DEVICE_ID = _path_param("device_id", {"type": "string", "minLength": 1, "maxLength": 64})
#: Versions are 32-bit integers in the database: larger ones are no route (404).
VERSION = _path_param("version", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1})

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"},
            "request_id": NULLABLE_STR}}},
    },
    "Job": {
        "type": "object",
        "required": ["id", "kind", "status", "priority", "queue", "params", "progress", "artifacts", "attempts",
                     "created_at"],
        "properties": {
            "id": {"type": "string"}, "kind": {"type": "string"},
            "status": {"enum": [s.value for s in JobStatus]},
            "priority": {"type": "integer", "minimum": 0, "maximum": 9}, "queue": {"type": "string"},
            "params": {"type": "object"},
            "input": {"type": ["object", "null"]},
            "progress": {"type": "object", "properties": {
                "fraction": {"type": "number", "minimum": 0, "maximum": 1}, "stage": NULLABLE_STR,
                "message": NULLABLE_STR, "seq": {"type": "integer"}}},
            "result": {"type": ["object", "null"]},
            "artifacts": {"type": "array", "items": _ref("Artifact")},
            "error": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}]},
            "attempts": {"type": "integer"}, "redeliveries": {"type": "integer"},
            "cancel_requested": {"type": "boolean"}, "worker": NULLABLE_STR,
            "owner_id": {"type": ["integer", "null"]},
            "owner": {**NULLABLE_STR, "description": "The name of the user who submitted it (in lists and reads)."},
            "time_limits": {"type": "object", "properties": {"soft_s": {"type": "number"}, "hard_s": {"type": "number"}}},
            "created_at": {"type": "string", "format": "date-time"}, "started_at": TIME, "finished_at": TIME,
            "run_seconds": {"type": ["number", "null"]},
        },
    },
    "Artifact": {"type": "object", "required": ["name", "size"], "properties": {
        "name": {"type": "string"}, "size": {"type": "integer"}, "media_type": {"type": "string"}}},
    "JobList": {"type": "object", "required": ["jobs", "total", "limit", "offset", "next"], "properties": {
        "jobs": {"type": "array", "items": _ref("Job")}, "total": {"type": "integer"},
        "limit": {"type": "integer"}, "offset": {"type": "integer"}, "next": NULLABLE_STR}},
    "Kind": {"type": "object", "required": ["name", "title", "params_schema", "queue"], "properties": {
        "name": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "queue": {"type": "string"}, "params_schema": {"type": "object"}, "time_limits": {"type": "object"},
        "stages": {"type": "array", "items": {"type": "string"}}, "upload": {"type": ["object", "null"]}}},
    "NewDevice": DEVICE_SCHEMA,
    "DeviceChange": {"type": "object", "additionalProperties": False, "properties": {
        name: spec for name, spec in DEVICE_SCHEMA["properties"].items() if name not in ("id", "driver")}},
    "Device": {"type": "object", "required": ["id", "name", "driver", "queue"], "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "driver": {"type": "string"},
        "connection": {"type": "object"}, "calibration": {"type": "object"}, "schedule": NULLABLE_STR,
        "host": NULLABLE_STR, "queue": {"type": "string"}, "capabilities": {"type": ["object", "null"]},
        "current_profile_version": {"type": ["integer", "null"]}, "last_calibrated_at": TIME,
        "last_scheduled_at": TIME, "created_at": TIME, "updated_at": TIME}},
    "Profile": {"type": "object", "required": ["device_id", "version", "passed", "current", "settings"], "properties": {
        "device_id": {"type": "string"}, "version": {"type": "integer"}, "job_id": NULLABLE_STR,
        "passed": {"type": "boolean"}, "current": {"type": "boolean"},
        "reasons": {"type": "array", "items": {"type": "string"}}, "checks": {"type": "object"},
        "settings": {"type": "object"}, "intrinsics": {"type": ["object", "null"]}, "sweeps": {"type": "object"},
        "created_at": TIME}},
    "Model": {"type": "object", "required": ["version"], "properties": {"version": {"type": "integer"}}},
}


PRIORITY = {"type": ["integer", "null"], "minimum": 0, "maximum": 9, "default": 5}


def _submission_schema(form: bool = False, kinds: list | None = None, direct_upload: bool = False) -> dict[str, Any]:
    """A submission of each kind (of ``kinds``, default all) with its own params schema
    (``GET /kinds/{name}``); as a multipart form, with the input in ``file`` and
    ``params`` sent as a JSON part; with ``direct_upload``, a kind that takes a file may
    name one put into the object store (``upload``)."""
    def one(kind) -> dict[str, Any]:
        params = kind.params_schema if form else {"anyOf": [kind.params_schema, {"type": "null"}]}  # null: {}
        properties = {"kind": {"const": kind.name}, "params": params,
                      "priority": {"type": "string", "pattern": "^[0-9]?$"} if form else PRIORITY}  # "": 5
        if form and kind.upload is not None:
            properties["file"] = {"type": "string", "format": "binary"}
        if direct_upload and kind.upload is not None:
            properties["upload"] = {"type": "string", "description": "A direct upload's claim (POST /uploads)."}
        required = ["kind"] + (["file"] if form and kind.upload is not None and kind.upload.required else [])
        return {"type": "object", "required": required, "properties": properties, "additionalProperties": form}

    return {"oneOf": [one(kind) for kind in kinds or all_kinds()]}


def describe() -> dict[str, Any]:
    job_ops = {"200": _json(_ref("Job"))}
    description = {
        "openapi": "3.1.0",
        "info": {"title": "vitalq", "version": "1",
                 "description": "Submit, watch and cancel background jobs; devices and their calibration profiles. "
                                "Progress streams on the websocket /ws/jobs/{job_id}."},
        "paths": {
            "/api/v1/kinds": {"get": {"operationId": "listKinds", "responses": {
                "200": _json({"type": "object", "required": ["kinds"],
                              "properties": {"kinds": {"type": "array", "items": _ref("Kind")}}})}}},
            "/api/v1/kinds/{name}": {"get": {"operationId": "getKind", "parameters": [_path_param("name")],
                                             "responses": {"200": _json(_ref("Kind")), **_errors(404)}}},
            "/api/v1/jobs": {
                "post": {"operationId": "submitJob", "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _submission_schema(direct_upload=True)},
                    "multipart/form-data": {"schema": _submission_schema(form=True),
                                            "encoding": {"params": {"contentType": "application/json"}}}}},
                    "parameters": [IDEMPOTENCY_KEY],
                    "responses": {"201": _json(_ref("Job"), "Queued"),
                                  "200": _json(_ref("Job"), "A repeat of a submission (its Idempotency-Key): its job"),
                                  **_errors(400, 403, 404, 409, 413, 415, 503)}},
                "get": {"operationId": "listJobs", "parameters": [
                    {"name": "kind", "in": "query", "schema": {"type": "string"}},
                    {"name": "status", "in": "query", "schema": {"enum": [s.value for s in JobStatus]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 10**9}}],
                    "responses": {"200": _json(_ref("JobList")), **_errors(400)}},
            },
            "/api/v1/batches": {"post": {
                "operationId": "submitJobs", "parameters": [IDEMPOTENCY_KEY],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["jobs"], "additionalProperties": False, "properties": {
                        "jobs": {"type": "array", "minItems": 1, "maxItems": 100, "items": _submission_schema(
                            kinds=[kind for kind in all_kinds() if kind.upload is None or not kind.upload.required])}
                    }}}}},
                "responses": {"201": _json({"type": "object", "required": ["jobs"], "properties": {
                    "jobs": {"type": "array", "items": _ref("Job")}}}, "Queued, all of them"),
                    "200": _json({"type": "object", "required": ["jobs"], "properties": {
                        "jobs": {"type": "array", "items": _ref("Job")}}},
                        "A repeat of a batch (its Idempotency-Key): its jobs"),
                    **_errors(400, 403, 404, 409, 503)}}},
            "/api/v1/jobs/{job_id}": {
                "get": {"operationId": "getJob", "parameters": [JOB_ID], "responses": {**job_ops, **_errors(404)}},
                "delete": {"operationId": "deleteJob", "parameters": [JOB_ID],
                           "description": "A finished job is deleted, with its artifacts, events and (once no "
                                          "other job refers to it) its upload; a live job is cancelled.",
                           "responses": {"204": {"description": "Deleted"}, **job_ops,
                                         "202": _json(_ref("Job"), "Asked to stop"), **_errors(404, 409)}},
            },
            "/api/v1/jobs/{job_id}/cancel": {"post": {
                "operationId": "cancelJob", "parameters": [JOB_ID], "responses": {
                    **job_ops, "202": _json(_ref("Job"), "Asked to stop"), **_errors(404, 409)}}},
            "/api/v1/jobs/{job_id}/retry": {"post": {
                "operationId": "retryJob", "parameters": [JOB_ID],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"priority": {"type": ["integer", "null"], "minimum": 0,
                                                                  "maximum": 9}}}}}},
                "responses": {"201": _json(_ref("Job"), "Queued again"), **_errors(400, 404, 503)}}},
            "/api/v1/uploads": {"post": {
                "operationId": "offerUpload", "requestBody": {"required": True, "content": {"application/json": {
                    "schema": DIRECT_UPLOAD_SCHEMA}}},
                "responses": {"201": _json({"type": "object", "required": ["upload", "url", "method", "headers"],
                                            "properties": {"upload": {"type": "string"}, "url": {"type": "string"},
                                                           "method": {"const": "PUT"}, "headers": {"type": "object"},
                                                           "expires_in_s": {"type": "integer"}}},
                                           "Where to PUT the file, and the claim to submit the job with"),
                              **_errors(400, 404, 413, 429, 503)}}},
            "/api/v1/jobs/{job_id}/artifacts": {"get": {
                "operationId": "listArtifacts", "parameters": [JOB_ID], "responses": {
                    "200": _json({"type": "object", "properties": {"artifacts": {"type": "array",
                                                                                 "items": _ref("Artifact")}}}),
                    **_errors(404)}}},
            "/api/v1/jobs/{job_id}/artifacts/{name}": {"get": {
                "operationId": "getArtifact", "parameters": [JOB_ID, _path_param("name")],
                "responses": {"200": {"description": "The file", "content": {"*/*": {}}}, **_errors(404)}}},
            "/api/v1/models": {"get": {"operationId": "listModels", "responses": {"200": _json({
                "type": "object", "properties": {"models": {"type": "array", "items": _ref("Model")},
                                                 "active_version": {"type": ["integer", "null"]}}})}}},
            "/api/v1/models/{version}": {"get": {"operationId": "getModel", "parameters": [VERSION],
                                                 "responses": {"200": _json(_ref("Model")), **_errors(404)}}},
            "/api/v1/models/{version}/activate": {"post": {
                "operationId": "activateModel", "parameters": [VERSION],
                "responses": {"200": _json(_ref("Model")), **_errors(404)}}},
            "/api/v1/devices": {
                "get": {"operationId": "listDevices", "responses": {"200": _json({
                    "type": "object", "properties": {"devices": {"type": "array", "items": _ref("Device")}}})}},
                "post": {"operationId": "registerDevice",
                         "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewDevice")}}},
                         "responses": {"201": _json(_ref("Device"), "Registered"), **_errors(400, 409)}},
            },
            "/api/v1/devices/{device_id}": {
                "get": {"operationId": "getDevice", "parameters": [DEVICE_ID],
                        "responses": {"200": _json(_ref("Device")), **_errors(404)}},
                "patch": {"operationId": "changeDevice", "parameters": [DEVICE_ID],
                          "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("DeviceChange")}}},
                          "responses": {"200": _json(_ref("Device")), **_errors(400, 404)}},
                "delete": {"operationId": "removeDevice", "parameters": [DEVICE_ID],
                           "responses": {"204": {"description": "Removed, with its profiles"}, **_errors(404)}},
            },
            "/api/v1/devices/{device_id}/calibrate": {"post": {
                "operationId": "calibrateDevice", "parameters": [DEVICE_ID],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"priority": {"type": ["integer", "null"], "minimum": 0, "maximum": 9},
                                                     "plan": PLAN_SCHEMA}}}}},
                "responses": {"201": _json(_ref("Job"), "Queued"), **_errors(400, 404, 503)}}},
            "/api/v1/devices/{device_id}/profiles": {"get": {
                "operationId": "listProfiles", "parameters": [DEVICE_ID], "responses": {
                    "200": _json({"type": "object", "properties": {
                        "profiles": {"type": "array", "items": _ref("Profile")},
                        "current_version": {"type": ["integer", "null"]}}}), **_errors(404)}}},
            "/api/v1/devices/{device_id}/profiles/current": {"get": {
                "operationId": "getCurrentProfile", "parameters": [DEVICE_ID],
                "responses": {"200": _json(_ref("Profile")), **_errors(404)}}},
            "/api/v1/devices/{device_id}/profiles/{version}": {"get": {
                "operationId": "getProfile", "parameters": [DEVICE_ID, VERSION],
                "responses": {"200": _json(_ref("Profile")), **_errors(404)}}},
        },
        "components": {"schemas": SCHEMAS},
    }
    for operations in description["paths"].values():  # every call is authenticated and counted
        for operation in operations.values():
            operation["responses"].update(_errors(401, 429))
    return description


@bp.get("/api/v1/openapi.json")
def openapi():
    return jsonify(describe())
