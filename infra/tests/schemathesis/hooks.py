"""Schemathesis hooks: generated requests never touch the accounts the run depends on.

The run signs in as a dedicated admin and a dedicated user, and the platform's first
admin must survive for the tests after it. Cases whose path names one of them are not
generated (the stateful phase learns ids from responses, such as a page of users that
lists them). Should one still come through, its DELETE, PUT or PATCH goes to a random id
instead; only as the last resort, since schemathesis reads the 404 that follows a
resource it saw listed as "created resource not found".
"""

import os
import uuid

import schemathesis

PROTECTED = {value for value in os.environ.get("ST_PROTECTED_IDS", "").split(",") if value}


@schemathesis.hook
def filter_path_parameters(context, path_parameters):
    """Generated and learnt ids alike: a case aimed at a protected account is not made."""
    return not path_parameters or str(path_parameters.get("id")) not in PROTECTED


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() not in ("DELETE", "PUT", "PATCH") or not case.path_parameters:
        return
    if str(case.path_parameters.get("id")) in PROTECTED:
        case.path_parameters["id"] = str(uuid.uuid4())
