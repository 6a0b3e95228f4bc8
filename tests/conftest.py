"""Run every asyncio test on the stdlib loop and on uvloop (pytest-asyncio's loop-factories hook),
every anyio test on asyncio, asyncio+uvloop and trio, and the codec tests on both codec
implementations (pure Python and the C speedups)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import trustme
import uvloop

from aiomsg.framing import Decoder, Framing, speedups_active

LOOPS: Mapping[str, Any] = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Any]:
    return LOOPS


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"loop_factory": uvloop.new_event_loop}), id="asyncio+uvloop"),
        pytest.param(("trio", {}), id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


# The codecs have two implementations with one behaviour: pure Python, and the C
# speedups where they were built. Codec tests ask for this fixture to run on both;
# it switches nothing: it makes each decoder with the implementation it names.
IMPLEMENTATIONS = ["python", "c"] if speedups_active() else ["python"]


@dataclass(frozen=True)
class Codec:
    """One codec implementation: ``codec.decoder(framing)`` makes its decoders."""

    name: str

    def decoder(self, framing: Framing) -> Decoder:
        return framing.decoder(pure_python=self.name == "python")


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def codec_implementation(request: pytest.FixtureRequest) -> Codec:
    return Codec(request.param)


@pytest.fixture(scope="session")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) from a throwaway CA, for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client
