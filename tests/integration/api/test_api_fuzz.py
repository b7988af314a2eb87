"""Property-based fuzzing driven by the OpenAPI document (schemathesis): nothing a client sends is a 5xx, every
answer conforms to the document (status code, content type, response schema), and the document says what the API
accepts: a request it calls valid is not refused as invalid (4xx other than 401/403/404/409/429), one it calls
invalid is refused (schemathesis's positive_data_acceptance / negative_data_rejection, in its default checks).

The API runs as the real console script (`genesis api`) against a fresh database; schemathesis
generates valid (positive) and invalid (negative) requests for every operation, half of them
aimed at a session the token's user really owns (and, for the agents' task routes, at a real command),
so the handlers behind the 404 are reached too. The token holds the agent scope, so those routes are
fuzzed past their 403.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from typing import Any

import aiohttp
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok

from api.openapi import document
from genesis.auth.tokens import AGENT_SCOPE, issue_token
from genesis.local.services import free_port, wait_for_port
from genesis.settings import Settings
from tests.conftest import JWT_SECRET
from tests.processes import genesis_command

# Streams never end by themselves; they have their own tests (test_events_stream.py).
SKIP = {("GET", "/genesis/sessions/{session_id}/events/stream")}
# What the issue asks of the document (CONTRACT §4): every answer is one it describes, in status, content type and
# body, and none is a server error.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]
# Valid data is accepted, but for what the document cannot say: a string holding NUL (or an unpaired surrogate,
# which schemathesis's default UTF-8 codec never generates) is refused on purpose, as jsonb cannot store it.
ACCEPTANCE = [schemathesis.checks.positive_data_acceptance]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))


@pytest.mark.slow
async def test_fuzzing_every_operation_finds_no_server_error(database_url: str) -> None:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "JWT_SECRET": JWT_SECRET, "API_PORT": str(port),
           "SERVICE_TYPE": "api", "LOG_LEVEL": "ERROR"}  # fmt: skip
    process = subprocess.Popen([genesis_command()], env=env, stderr=subprocess.PIPE)  # noqa: ASYNC220 - a server, not awaited
    try:
        await asyncio.to_thread(wait_for_port, port, process=process)
        base_url = f"http://127.0.0.1:{port}"
        token = issue_token(Settings(jwt_secret=JWT_SECRET), "fuzzer", ttl=600, scopes=AGENT_SCOPE)
        headers = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            created = await http.post(f"{base_url}/genesis/sessions", headers=headers)
            session_id = (await created.json())["id"]
            body = {"command_type": "RequestConceptGeneration", "payload": {}}
            commands = f"{base_url}/genesis/sessions/{session_id}/commands"
            submitted = await http.post(commands, json=body, headers=headers)
            command_id = (await submitted.json())["command_id"]
        failures = await asyncio.to_thread(_fuzz, base_url, token, session_id, command_id)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    log = stderr.decode()
    assert failures == [], "\n\n".join(failures) + "\n\n" + log[-4000:]  # each failure in full; the server's log
    assert process.returncode == 0, log[-2000:]


def _fuzz(base_url: str, token: str, session_id: str, command_id: str) -> list[str]:
    schema = schemathesis.openapi.from_dict(document())
    # The token is the caller's (sent with every request below), so no case leaves it out or spoils it: a case
    # "without Authorization" that is sent with it would be a valid request taken for an invalid one.
    schema.config.generation.update(with_security_parameters=False)
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        for mode in schemathesis.GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode), own_session=st.booleans())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case[Any], own_session: bool) -> None:
                own_session = own_session and not _negated(case, ParameterLocation.PATH)
                if own_session and case.path_parameters and "session_id" in case.path_parameters:
                    case.path_parameters["session_id"] = session_id
                if own_session and case.path_parameters and case.operation.path.startswith("/genesis/tasks/"):
                    case.path_parameters["command_id"] = command_id
                if case.headers and "Idempotency-Key" in case.headers and not _negated(case, ParameterLocation.HEADER):
                    # A fresh key per request: a generated one used before for another command is (rightly) 422.
                    case.headers["Idempotency-Key"] = uuid.uuid4().hex
                response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
                checks = CHECKS if "\\u0000" in json.dumps(case.body, default=str) else CHECKS + ACCEPTANCE
                try:
                    case.validate_response(response, checks=checks)
                except FailureGroup as group:  # each check's failure, named with the request and the answer
                    for failure in group.exceptions:
                        failures.append(
                            f"{case.method} {case.formatted_path} → {response.status_code} {response.text[:200]!r}"
                            f" (sent {case.as_curl_command()}): {failure}"
                        )

            try:
                check()
            except Unsatisfiable:
                # An operation with no parameters and no body has no invalid form to generate.
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.path
    return failures


def _negated(case: schemathesis.Case[Any], location: ParameterLocation) -> bool:
    """Whether schemathesis made this part of the request invalid on purpose (then it is sent as generated)."""
    component = case.meta.components.get(location) if case.meta else None
    return component is not None and component.mode.is_negative
