"""Which publisher the relay builds: only an idempotent producer is renewed after a failed publish."""

from __future__ import annotations

import pytest

from genesis.settings import Settings
from relay.idempotent import RenewingPublisher, publisher_for


@pytest.mark.parametrize(("idempotent", "renews"), [(True, True), (False, False)])
async def test_only_an_idempotent_producer_is_renewed(idempotent: bool, renews: bool) -> None:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", kafka_enable_idempotence=idempotent)
    publisher = publisher_for(settings, timeout=1.0)
    try:
        assert isinstance(publisher, RenewingPublisher) is renews
    finally:
        await publisher.stop()
