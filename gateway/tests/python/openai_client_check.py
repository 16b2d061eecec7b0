"""Tried as a new user would: the official `openai` Python client against Aurora.

Usage: python openai_client_check.py http://127.0.0.1:PORT

One chat call and one streamed chat call against `mock/gpt-4o-mini`, checked the way a
user would notice problems: the SDK parses the answers into its own types (a shape it
does not accept raises), the streamed text equals the plain answer (the mock is
deterministic), usage is present when asked for. Prints one PASS line, or FAIL with
the reason and exits 1.
"""

import sys

import openai
from openai import OpenAI

MODEL = "mock/gpt-4o-mini"
PROMPT = "Hello from the official OpenAI client!"


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: openai_client_check.py BASE_URL", file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/") + "/v1"
    # No Aurora auth keys yet; the SDK insists on some key, so give it a placeholder.
    client = OpenAI(base_url=base, api_key="not-needed", max_retries=0, timeout=30)

    plain = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": PROMPT}]
    )
    text = plain.choices[0].message.content or ""
    assert plain.object == "chat.completion", plain.object
    assert plain.choices[0].finish_reason == "stop", plain.choices[0].finish_reason
    assert text, "empty answer"
    assert plain.usage is not None and plain.usage.completion_tokens == 16, plain.usage

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, finish = [], None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk", chunk.object
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    streamed = "".join(pieces)
    assert streamed == text, f"stream {streamed!r} != plain {text!r}"
    assert finish == "stop", finish
    assert usage is not None and usage.total_tokens == plain.usage.total_tokens, usage

    print(
        f"PASS openai-python {openai.__version__}: chat ({plain.usage.total_tokens} tokens) "
        f"and streamed chat ({len(pieces)} chunks) against {MODEL} at {base}"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as error:  # noqa: BLE001 - any failure is a FAIL line
        print(f"FAIL openai client check: {type(error).__name__}: {error}")
        sys.exit(1)
