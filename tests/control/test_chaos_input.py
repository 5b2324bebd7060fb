"""Bad input to the chaos faults that the bounds tests do not reach: members of the wrong
type through the Python API (which the control API already refuses, being strict), a path
with a query (which no request's path can match), and paths that are not ASCII."""

import pytest

WRONG_TYPES = [
    ({"kind": "drop", "count": "3"}, "count must be an integer"),
    ({"kind": "drop", "count": True}, "count must be an integer"),
    ({"kind": "drop", "count": 2.5}, "count must be an integer"),
    ({"kind": "drop", "seed": 1.5}, "seed must be an integer"),
    ({"kind": "drop", "seed": True}, "seed must be an integer"),
    ({"kind": "reorder", "window": 2.5}, "window must be an integer"),
    ({"kind": "drop", "probability": True}, "probability must be a number"),
    ({"kind": "drop", "probability": "0.5"}, "probability must be a number"),
    ({"kind": "delay", "seconds": "1"}, "seconds must be a number"),
    ({"kind": "delay", "distribution": "uniform", "min": "0", "max": 1}, "min must be a number"),
    ({"kind": "drop", "path": 5}, "path must be a string"),
    ({"kind": "error", "code": 503}, "code must be a string"),
    ({"kind": 3}, "kind must be a string"),
]


@pytest.mark.parametrize("body, message", WRONG_TYPES)
async def test_a_member_of_the_wrong_type_is_refused_in_python_as_over_http(rig, body, message):
    status, answer = await rig.http.request("POST", "/faults", body)
    assert status == 400, answer  # the control API is strict: no coercion
    with pytest.raises(ValueError, match=message):
        rig.emu.add_fault(**body)
    assert rig.emu.list_faults() == []


async def test_a_path_with_a_query_is_refused_as_it_could_never_match(rig):
    body = {"kind": "error", "path": "/v1/settings?x=1"}
    status, answer = await rig.http.request("POST", "/faults", body)
    assert status == 400 and "without its query" in answer["error"], answer
    with pytest.raises(ValueError, match="without its query"):
        rig.emu.add_fault(**body)


async def test_a_fault_on_a_path_that_is_not_ascii_acts_on_it(rig):
    await rig.http.post(
        "/faults", {"kind": "error", "path": "/v1/séssions", "code": "4.29"}, status=201
    )
    assert (await rig.coap.get("/v1/séssions")).code == "4.29"
    assert (await rig.coap.get("/v1/sessions")).code == "2.05"
