"""Fixtures of the interop tests: each third-party client aimed at the `emulator` fixture.

A missing client skips the test, or fails it under CI=true (helpers.require)."""

import pytest

from tests.interop.helpers import (
    COAP_CLIENT,
    NODE_COAP,
    CoapClient,
    NodeCoap,
    require,
)


@pytest.fixture
def node(emulator) -> NodeCoap:
    return NodeCoap(require(NODE_COAP), emulator.port)


@pytest.fixture
def coap(emulator) -> CoapClient:
    return CoapClient(require(COAP_CLIENT), emulator.port)
