"""The arena's view of a client: salted hashes of its session and address (arena.integrity)."""

from typing import Annotated

from fastapi import Depends, Request

from arena.integrity import VoterIdentity, identify, voter_salt
from server.limits import client_address, client_session


async def voter_identity(request: Request) -> VoterIdentity:  # async: no worker-thread hop (server.deps)
    app_state = request.app.state
    salt = getattr(app_state, "voter_salt", None)
    if salt is None:  # read once per app: from the setting or LIBRA_HOME/voter.salt
        salt = app_state.voter_salt = voter_salt(app_state.runtime.settings)
    settings = app_state.runtime.settings
    return identify(salt, client_session(request), client_address(request, settings.trusted_proxies))


VoterDep = Annotated[VoterIdentity, Depends(voter_identity)]
