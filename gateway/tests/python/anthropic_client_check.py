"""Tried as a new user would: the official `anthropic` Python client against Aurora.

Usage: python anthropic_client_check.py http://127.0.0.1:PORT

Aurora serves Anthropic's Messages API at `/v1/messages`, so a Claude SDK user only
changes `base_url`. Checked the way a user would notice problems: the SDK parses the
answers into its own types (a shape it does not accept raises); `messages.create` and
`messages.stream` against `mock/gpt-4o-mini` give the same text (the mock is
deterministic); a tool use round trip through the mock: the prompt names the tool,
the answer is a `tool_use` block with `stop_reason: "tool_use"` (plain and streamed,
the streamed input rebuilt by the SDK from `input_json_delta` events), and sending the
`tool_result` back gets a text answer. Prints one PASS line, or FAIL with the reason
and exits 1.
"""

import sys

import anthropic
from anthropic import Anthropic

MODEL = "mock/gpt-4o-mini"
PROMPT = "Hello from the official Anthropic client!"
TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather of a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    }
]


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: anthropic_client_check.py BASE_URL", file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/")
    # No Aurora auth keys in this run; the SDK insists on some key (sent as x-api-key).
    client = Anthropic(base_url=base, api_key="not-needed", max_retries=0, timeout=30)

    plain = client.messages.create(
        model=MODEL,
        max_tokens=256,
        system="You are a test.",
        messages=[{"role": "user", "content": PROMPT}],
    )
    assert plain.type == "message", plain.type
    assert plain.role == "assistant", plain.role
    assert plain.stop_reason == "end_turn", plain.stop_reason
    text = "".join(b.text for b in plain.content if b.type == "text")
    assert text, "empty answer"
    assert plain.usage.output_tokens == 16, plain.usage

    with client.messages.stream(
        model=MODEL,
        max_tokens=256,
        system="You are a test.",
        messages=[{"role": "user", "content": PROMPT}],
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    streamed = "".join(pieces)
    assert streamed == text, f"stream {streamed!r} != plain {text!r}"
    assert final.stop_reason == "end_turn", final.stop_reason
    assert final.usage.output_tokens == plain.usage.output_tokens, final.usage

    ask = {"role": "user", "content": "Please use get_weather for Paris."}
    call = client.messages.create(model=MODEL, max_tokens=256, tools=TOOLS, messages=[ask])
    assert call.stop_reason == "tool_use", call.stop_reason
    uses = [b for b in call.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].name == "get_weather", call.content
    assert uses[0].input == {"city": "mock"}, uses[0].input

    with client.messages.stream(
        model=MODEL, max_tokens=256, tools=TOOLS, messages=[ask]
    ) as stream:
        streamed_call = stream.get_final_message()
    assert streamed_call.stop_reason == "tool_use", streamed_call.stop_reason
    streamed_uses = [b for b in streamed_call.content if b.type == "tool_use"]
    assert [(u.id, u.name, u.input) for u in streamed_uses] == [
        (u.id, u.name, u.input) for u in uses
    ], streamed_call.content

    answer = client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=TOOLS,
        messages=[
            ask,
            {"role": "assistant", "content": call.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny"}
                ],
            },
        ],
    )
    assert answer.stop_reason == "end_turn", answer.stop_reason
    assert answer.content and answer.content[0].type == "text", answer.content

    print(
        f"PASS anthropic-python {anthropic.__version__}: messages ({plain.usage.output_tokens} "
        f"output tokens), streamed messages ({len(pieces)} text deltas) and a tool_use round "
        f"trip against {MODEL} at {base}/v1/messages"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # noqa: BLE001 - any failure is a FAIL line
        print(f"FAIL anthropic client check: {type(error).__name__}: {error}")
        sys.exit(1)
