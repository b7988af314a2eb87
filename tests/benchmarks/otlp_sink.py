"""A local OTLP/HTTP collector stand-in for `make bench-api`: receives and decodes spans until SIGTERM,
then prints one JSON line (requests, spans).

    python -m tests.benchmarks.otlp_sink PORT
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from tests.otlp_receiver import OtlpReceiver


async def main(port: int) -> None:
    receiver = OtlpReceiver(decode_later=True)
    receiver.port = port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with receiver.running():
        print("ready", file=sys.stderr, flush=True)
        await stop.wait()
    receiver.decode_kept()
    print(json.dumps({"requests": receiver.requests, "spans": len(receiver.spans)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
