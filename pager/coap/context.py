"""The aiocoap context the emulator serves from."""

import aiocoap
from aiocoap.pipe import error_to_message, run_driving_pipe


class ServerContext(aiocoap.Context):
    """aiocoap's Context, with render tasks that are not named after their request.

    aiocoap names the task rendering each request "Rendering for <repr of the request>", and
    formats that name for every request whether anyone looks at it or not. The repr parses
    the peer's address with `ipaddress`: 5 % of the server's time under write load (py-spy),
    for a name no log line shows. Everything else is aiocoap's `render_to_pipe` as it is.
    """

    def render_to_pipe(self, pipe) -> None:
        run_driving_pipe(error_to_message(pipe, self.log), self._render_to_pipe(pipe),
                         name="CoAP request")
