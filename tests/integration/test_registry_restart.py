"""The local schema registry (infra/registry.sh) keeps its schemas across a restart: records
framed with an id it issued stay readable, instead of becoming dead letters for an unknown
schema id. A registry of its own, on other ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pipelines.wire import WireFormat
from state.schemas import INVENTORY_EVENT
from tests.integration.conftest import _infra
from transforms.events import Event
from transforms.validation import event_to_record

pytestmark = pytest.mark.integration

PORT = 8095
ENV = {
    "REGISTRY_PORT": str(PORT),
    "REGISTRY_MANAGEMENT_PORT": "9095",
    "REGISTRY_HOME_DIR": "var/registry-restart",
}
URL = f"http://127.0.0.1:{PORT}/apis/ccompat/v7"


@pytest.fixture
def registry() -> Iterator[None]:
    _infra("registry.sh", "stop", "--purge", env=ENV)  # from scratch
    _infra("registry.sh", "start", env=ENV)
    yield
    _infra("registry.sh", "stop", "--purge", env=ENV)


def test_schema_ids_survive_a_restart(registry: None) -> None:
    event = Event("restart-1", "RECEIPT", "SKU-1", "DC1", 5, 1_778_486_400_000,
                  None, None, None, None, None, None, None, None)  # fmt: skip
    framed = WireFormat(URL).encode(INVENTORY_EVENT, "restart.events", event_to_record(event))

    _infra("registry.sh", "stop", env=ENV)
    _infra("registry.sh", "start", env=ENV)
    # A new client, with no schema cached: the id is looked up in the restarted registry.
    record = WireFormat(URL).decode(INVENTORY_EVENT, "restart.events", framed)
    assert record["event_id"] == "restart-1" and record["quantity"] == 5
