"""Tried as a new user would: the official `openai` Python client's Responses API
against Aurora's `/v1/responses`.

Usage: python responses_client_check.py http://127.0.0.1:PORT

Checked the way a user would notice problems, and stricter than the SDK itself (which
builds its types without validating them):
- `responses.create` plain: the raw JSON validates as the SDK's `Response` model,
  `output_text` is not empty and the usage adds up;
- `responses.create(stream=True)`: every event validates as a `ResponseStreamEvent`,
  sequence numbers count from 0, the deltas join to the plain `output_text` (the mock is
  deterministic) and `response.completed` carries the same usage;
- `responses.stream(...)`, the SDK's helper that rebuilds the response from the events
  and fails on an inconsistent sequence: its final response has the same `output_text`;
- a tool-call round trip: a request offering a function tool; if the mock answers with
  a `function_call`, its output is sent back as `function_call_output` and answered;
  either way an input holding a call and its output is accepted;
- `previous_response_id` is a 400 naming that parameter (Aurora stores nothing).
Prints one PASS line, or FAIL with the reason and exits 1.
"""

import json
import sys

import openai
import pydantic
from openai import OpenAI
from openai.types.responses import Response, ResponseStreamEvent

MODEL = "mock/gpt-4o-mini"
PROMPT = "Hello from the official OpenAI client, via the Responses API!"
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}

EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: responses_client_check.py BASE_URL", file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/") + "/v1"
    client = OpenAI(base_url=base, api_key="not-needed", max_retries=0, timeout=30)

    raw = client.responses.with_raw_response.create(
        model=MODEL, input=PROMPT, instructions="Be brief.", metadata={"check": "python"}
    )
    plain = Response.model_validate(json.loads(raw.http_response.text))
    text = plain.output_text
    assert plain.object == "response" and plain.status == "completed", plain.status
    assert text, "empty answer"
    assert plain.metadata == {"check": "python"}, plain.metadata
    assert plain.usage is not None, "no usage"
    u = plain.usage
    assert u.total_tokens == u.input_tokens + u.output_tokens, u

    stream = client.responses.create(model=MODEL, input=PROMPT, instructions="Be brief.", stream=True)
    pieces, completed, count = [], None, 0
    for event in stream:
        EVENTS.validate_python(event.to_dict())
        assert event.sequence_number == count, (event.sequence_number, count)
        count += 1
        if event.type == "response.output_text.delta":
            pieces.append(event.delta)
        elif event.type == "response.completed":
            completed = event.response
    streamed = "".join(pieces)
    assert streamed == text, f"stream {streamed!r} != plain {text!r}"
    assert completed is not None, "no response.completed"
    assert completed.output_text == text, completed.output_text
    assert completed.usage is not None and completed.usage.total_tokens == u.total_tokens

    with client.responses.stream(model=MODEL, input=PROMPT, instructions="Be brief.") as helper:
        for _ in helper:
            pass
        final = helper.get_final_response()
    assert final.output_text == text, f"stream helper {final.output_text!r} != {text!r}"

    asked = client.responses.create(
        model=MODEL,
        input="What is the weather in Paris? Use the get_weather tool.",
        tools=[TOOL],
        tool_choice="auto",
    )
    calls = [item for item in asked.output if item.type == "function_call"]
    if calls:
        followup = [
            {"role": "user", "content": "What is the weather in Paris? Use the get_weather tool."},
            *[c.model_dump(exclude_none=True) for c in calls],
            *[
                {"type": "function_call_output", "call_id": c.call_id, "output": '{"celsius": 21}'}
                for c in calls
            ],
        ]
        tool_note = f"tool call {calls[0].name} answered"
    else:
        followup = [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": '{"celsius": 21}'},
        ]
        tool_note = "mock made no tool call; a call and its output were sent as input"
    answered = client.responses.create(model=MODEL, input=followup, tools=[TOOL])
    assert answered.status == "completed" and answered.output_text, answered

    try:
        client.responses.create(model=MODEL, input=PROMPT, previous_response_id=plain.id)
        raise AssertionError("previous_response_id was accepted")
    except openai.BadRequestError as error:
        body = error.body if isinstance(error.body, dict) else {}
        assert body.get("param") == "previous_response_id", error.body

    print(
        f"PASS openai-python {openai.__version__}: responses ({u.total_tokens} tokens), "
        f"streamed responses ({count} events, {len(pieces)} deltas), stream helper, "
        f"{tool_note}, previous_response_id refused, against {MODEL} at {base}"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # noqa: BLE001 - any failure is a FAIL line
        print(f"FAIL responses client check: {type(error).__name__}: {error}")
        sys.exit(1)
