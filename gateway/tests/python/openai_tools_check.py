"""Tried as a new user would: a tool call with the official `openai` Python client.

Usage: python openai_tools_check.py http://127.0.0.1:PORT

The built-in mock calls a tool when the request offers tools and the last user message
names one (gateway/src/provider/mock.rs). One round trip the way an agent loop does it:
the model asks for `get_weather`, the client runs it and sends the result back, the
model answers with text. The same call streamed, assembled from its deltas, must equal
the plain one. Prints one PASS line, or FAIL with the reason and exits 1.
"""

import json
import sys

import openai
from openai import OpenAI

MODEL = "mock/gpt-4o-mini"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city now.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: openai_tools_check.py BASE_URL", file=sys.stderr)
        return 2
    client = OpenAI(
        base_url=sys.argv[1].rstrip("/") + "/v1",
        api_key="not-needed",
        max_retries=0,
        timeout=30,
    )
    messages = [{"role": "user", "content": "Use get_weather to look up Oslo."}]

    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice.finish_reason
    calls = choice.message.tool_calls or []
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.type == "function" and call.function.name == "get_weather", call
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"city"}, arguments

    stream = client.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, stream=True
    )
    streamed_id, streamed_name, streamed_args, finish = None, None, "", None
    for chunk in stream:
        for c in chunk.choices:
            for delta in c.delta.tool_calls or []:
                assert delta.index == 0, delta
                streamed_id = delta.id or streamed_id
                if delta.function and delta.function.name:
                    streamed_name = delta.function.name
                if delta.function and delta.function.arguments:
                    streamed_args += delta.function.arguments
            finish = c.finish_reason or finish
    assert (streamed_id, streamed_name, streamed_args) == (
        call.id,
        call.function.name,
        call.function.arguments,
    ), (streamed_id, streamed_name, streamed_args)
    assert finish == "tool_calls", finish

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append(
        {"role": "tool", "tool_call_id": call.id, "content": '{"celsius": -3}'}
    )
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop", second.choices[0]
    assert second.choices[0].message.content, "no text after the tool result"

    print(
        f"PASS openai-python {openai.__version__}: tool call {call.function.name}"
        f"({call.function.arguments}) plain and streamed, then a text answer"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (AssertionError, openai.OpenAIError) as error:
        print(f"FAIL openai tools check: {type(error).__name__}: {error}")
        sys.exit(1)
