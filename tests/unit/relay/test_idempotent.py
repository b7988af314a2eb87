"""Which publisher the relay builds: only an idempotent producer is renewed after a failed publish."""

from __future__ import annotations

import asyncio

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


class SlowToStart:
    """A renewed producer whose start takes a moment (the broker answering slowly)."""

    def __init__(self) -> None:
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        await asyncio.sleep(0.05)


async def test_a_renewed_producer_is_started_once_when_a_probe_and_a_publish_both_find_it_unstarted() -> None:
    """The breakers' look (a probe) runs in one lane while another publishes: both may find the renewed
    producer unstarted, and aiokafka's producer must not be started twice."""
    publisher = RenewingPublisher(Settings(kafka_bootstrap_servers="127.0.0.1:9"), timeout=1.0)
    real, fake = publisher._producer, SlowToStart()
    publisher._producer = fake
    publisher._renewed_unstarted = True
    try:
        assert all(await asyncio.gather(publisher._started(), publisher._started()))
        assert fake.starts == 1
    finally:
        publisher._producer = real
        await publisher.stop()
