"""The API against its own OpenAPI description: schemathesis generates requests, valid
and invalid, for every operation; no answer may be a server error, and every answer must
match the description (status, content type, body schema)."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance


from web.openapi import describe

# The same description the app publishes (the test below checks that it is served).
schema = schemathesis.openapi.from_dict(describe())


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_to_its_description(case, live_server, clean, tokens, configure):
    configure(rate_limit_per_min=0)  # thousands of requests a minute: no 429 to hide behind
    # Every check but "schema-valid data is accepted": a JSON Schema cannot say what the
    # API rightly refuses beyond it (a file a kind needs, a hard limit above the soft one,
    # a crontab's grammar, content sniffed from the bytes).
    case.call_and_validate(base_url=live_server, headers={"Authorization": f"Bearer {tokens['admin']}"},
                           excluded_checks=[positive_data_acceptance])


def test_the_description_is_published_and_covers_every_api_route(app, client):
    description = client.get("/api/v1/openapi.json").json
    assert description["openapi"].startswith("3.1")
    published = {path for path in description["paths"]}
    routes = {re.sub(r"<(?:int(?:\([^)]*\))?:)?(\w+)>", r"{\1}", str(rule))
              for rule in app.url_map.iter_rules() if str(rule).startswith("/api/v1") and "openapi" not in str(rule)}
    assert routes == published
    assert description == describe()


@pytest.mark.parametrize("path", ["/api/v1/models/9793724659138377728", "/api/v1/models/9793724659138377728/activate",
                                  "/api/v1/devices/x/profiles/9793724659138377728"])
def test_a_version_beyond_any_integer_is_not_found(client, path):
    answer = client.post(path) if path.endswith("activate") else client.get(path)
    assert answer.status_code == 404 and answer.json["error"]["code"] == "NOT_FOUND"
