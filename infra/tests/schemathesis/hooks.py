"""Schemathesis hooks: generated requests never touch the accounts the run depends on.

The run signs in as a dedicated admin and a dedicated user, and the platform's first
admin must survive for the tests after it. A generated DELETE, PUT or PATCH aimed at one
of them (the stateful phase learns ids from responses) goes to a random id instead.
"""

import os
import uuid

import schemathesis

PROTECTED = {value for value in os.environ.get("ST_PROTECTED_IDS", "").split(",") if value}


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() not in ("DELETE", "PUT", "PATCH") or not case.path_parameters:
        return
    if str(case.path_parameters.get("id")) in PROTECTED:
        case.path_parameters["id"] = str(uuid.uuid4())
