"""Tried as a new user would: embeddings and legacy completions with the official
`openai` Python client against Aurora.

Usage: python openai_embeddings_completions_check.py http://127.0.0.1:PORT

Against the built-in mock (no key needed):
- embeddings as floats and as base64 (the SDK's default, which it decodes itself) are
  the same vectors, bit for bit as 32-bit floats; one vector per input, in order;
  `dimensions` sets their length; usage counts input tokens only;
- a legacy completion, plain and streamed (with `include_usage`), parsed by the SDK
  into its `Completion` type; the streamed text equals the plain one (the mock is
  deterministic).
Prints one PASS line, or FAIL with the reason and exits 1.
"""

import math
import struct
import sys

import openai
from openai import OpenAI

MODEL = "mock/gpt-4o-mini"
INPUTS = ["Hello from the official OpenAI client!", "a second input"]
PROMPT = "Say something, legacy style."


def f32(values):
    """The values as little-endian 32-bit floats, to compare bit for bit."""
    return struct.pack(f"<{len(values)}f", *values)


def check_embeddings(client: OpenAI) -> str:
    floats = client.embeddings.create(model=MODEL, input=INPUTS, encoding_format="float")
    assert floats.object == "list", floats.object
    assert [d.index for d in floats.data] == [0, 1], floats.data
    assert all(len(d.embedding) == 256 for d in floats.data)
    norm = math.sqrt(sum(x * x for x in floats.data[0].embedding))
    assert abs(norm - 1.0) < 1e-4, norm
    assert floats.data[0].embedding != floats.data[1].embedding
    assert floats.usage.prompt_tokens > 0, floats.usage
    assert floats.usage.total_tokens == floats.usage.prompt_tokens, floats.usage

    # No encoding_format: the SDK asks for base64 and decodes it itself.
    b64 = client.embeddings.create(model=MODEL, input=INPUTS)
    for a, b in zip(floats.data, b64.data):
        assert f32(a.embedding) == f32(b.embedding), "base64 and float vectors differ"
    explicit = client.embeddings.create(model=MODEL, input=INPUTS[0], encoding_format="base64")
    assert isinstance(explicit.data[0].embedding, str), type(explicit.data[0].embedding)

    short = client.embeddings.create(model=MODEL, input=INPUTS[0], dimensions=64)
    assert len(short.data[0].embedding) == 64, len(short.data[0].embedding)
    return f"embeddings ({floats.usage.prompt_tokens} tokens, float == base64, dimensions)"


def check_completions(client: OpenAI) -> str:
    plain = client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=8)
    assert plain.object == "text_completion", plain.object
    text = plain.choices[0].text
    assert text, "empty completion"
    assert plain.choices[0].finish_reason == "length", plain.choices[0].finish_reason
    assert plain.usage is not None and plain.usage.completion_tokens == 8, plain.usage

    stream = client.completions.create(
        model=MODEL,
        prompt=PROMPT,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, finish = [], None, None
    for chunk in stream:
        assert chunk.object == "text_completion", chunk.object
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.text)
            if choice.finish_reason:
                finish = choice.finish_reason
    streamed = "".join(pieces)
    assert streamed == text, f"stream {streamed!r} != plain {text!r}"
    assert finish == "length", finish
    assert usage is not None and usage.total_tokens == plain.usage.total_tokens, usage
    return "completions (plain and stream)"


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: openai_embeddings_completions_check.py BASE_URL", file=sys.stderr)
        return 2
    base = sys.argv[1].rstrip("/") + "/v1"
    client = OpenAI(base_url=base, api_key="not-needed", max_retries=0, timeout=30)
    try:
        done = [check_embeddings(client), check_completions(client)]
    except (AssertionError, openai.OpenAIError) as error:
        print(f"FAIL openai-python embeddings/completions: {type(error).__name__}: {error}")
        return 1
    print(f"PASS openai-python {openai.__version__}: " + ", ".join(done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
