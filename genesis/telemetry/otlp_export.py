"""A SpanExporter that posts OTLP/HTTP protobuf requests encoded by genesis.otlp_encoding.

The SDK's OTLPSpanExporter encodes inside its `export` and has no public way to send bytes encoded
elsewhere, so the post is ours too: urllib3 (what `requests`, the SDK exporter's transport, is built on),
one kept-alive connection, the standard settings (OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, _HEADERS, _TIMEOUT,
_COMPRESSION) read as the SDK's exporter reads them, and its retry rule: a connection error once again at
once, then 429, 502, 503, 504 and connection errors after 1, 2, 4… s (±20 %) within the timeout. Settings
this exporter does not handle (TLS files, a credential provider) make genesis.telemetry.tracing use the SDK's exporter
instead (`handles`).
"""

from __future__ import annotations

import gzip
import logging
import os
import random
import threading
import time
import zlib
from collections.abc import Mapping, Sequence

import urllib3
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util.re import parse_env_headers

from genesis.telemetry.otlp_encoding import encode_request

log = logging.getLogger(__name__)

RETRYABLE = frozenset({429, 502, 503, 504})
# What only the SDK's exporter handles: with any of these set, genesis.telemetry.tracing uses it.
UNHANDLED = (
    *(
        f"OTEL_EXPORTER_OTLP_{s}{n}"
        for s in ("", "TRACES_")
        for n in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY")
    ),
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
)


def _setting(env: Mapping[str, str], name: str) -> str:
    """The traces-specific setting, else the general one (the SDK's order)."""
    return (env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}") or env.get(f"OTEL_EXPORTER_OTLP_{name}") or "").strip()


def handles(env: Mapping[str, str] | None = None) -> bool:
    """Whether this exporter covers every OTLP setting the environment gives."""
    e = os.environ if env is None else env
    if any(e.get(name, "").strip() for name in UNHANDLED):
        return False
    protocol = _setting(e, "PROTOCOL") or "http/protobuf"
    return protocol == "http/protobuf" and _setting(e, "COMPRESSION").lower() in ("", "none", "gzip", "deflate")


def endpoint(env: Mapping[str, str]) -> str:
    traces = (env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or "").strip()
    if traces:
        return traces  # as given: it names the signal's path itself
    base = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "").strip() or "http://localhost:4318"
    return f"{base.removesuffix('/')}/v1/traces"


class OtlpHttpSpanExporter(SpanExporter):
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        e = os.environ if env is None else env
        self.endpoint = endpoint(e)
        self.compression = _setting(e, "COMPRESSION").lower() or "none"
        self.headers = {"content-type": "application/x-protobuf", "user-agent": "genesis-otlp-exporter"}
        self.headers.update(parse_env_headers(_setting(e, "HEADERS"), liberal=True))
        if self.compression != "none":
            self.headers["content-encoding"] = self.compression
        try:
            self.timeout = float(_setting(e, "TIMEOUT") or 10)
        except ValueError:
            log.warning("Invalid OTLP timeout %r, using 10 s", _setting(e, "TIMEOUT"))
            self.timeout = 10.0
        self._http = urllib3.PoolManager(num_pools=1, maxsize=1)
        self._stopped = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._stopped.is_set():
            return SpanExportResult.FAILURE
        try:
            body = encode_request(spans)
        except Exception:
            log.exception("Failed to encode %d spans", len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS if self.send(body) else SpanExportResult.FAILURE

    def send(self, body: bytes) -> bool:
        """Posts one serialized ExportTraceServiceRequest (compressed as configured); whether it was taken."""
        if self._stopped.is_set():
            return False
        if self.compression == "gzip":
            body = gzip.compress(body, mtime=0)
        elif self.compression == "deflate":
            body = zlib.compress(body)
        deadline = time.monotonic() + self.timeout
        for retry in range(6):
            remaining = deadline - time.monotonic()
            try:
                response = self._http.request("POST", self.endpoint, body=body, headers=self.headers,
                                              timeout=max(remaining, 0.001), retries=False)  # fmt: skip
            except urllib3.exceptions.HTTPError as exc:  # refused, reset, timed out: worth another try
                status, why = None, f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= response.status < 400:
                    return True
                status, why = response.status, response.reason or ""
                if status not in RETRYABLE:
                    break
            if retry == 0 and status is None:
                continue  # most likely a kept-alive connection the receiver closed: again at once, as the SDK does
            backoff = 2 ** (retry - 1) * random.uniform(0.8, 1.2)
            if backoff > deadline - time.monotonic() or self._stopped.wait(backoff):
                break
        log.error("Failed to export spans to %s: %s %s", self.endpoint, status or "", why)
        return False

    def shutdown(self) -> None:
        self._stopped.set()
        self._http.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # nothing is buffered here: the batch processor holds the spans
