// Tried as a new user would: the official `openai` Node client (npm) against Aurora.
//
// Usage: node openai_client_check.mjs http://127.0.0.1:PORT
//
// One chat call and one streamed chat call against `mock/gpt-4o-mini`: the SDK parses
// the answers (plain JSON and SSE chunks up to `data: [DONE]`), the streamed text equals
// the plain answer (the mock is deterministic), and usage is present when asked for.
// Prints one PASS line, or FAIL with the reason and exits 1.
import OpenAI from "openai";
import { VERSION } from "openai/version";

const MODEL = "mock/gpt-4o-mini";
const PROMPT = "Hello from the official OpenAI Node client!";

function check(ok, what) {
  if (!ok) throw new Error(what);
}

async function main() {
  const [base] = process.argv.slice(2);
  if (!base) {
    console.error("usage: node openai_client_check.mjs BASE_URL");
    return 2;
  }
  const baseURL = base.replace(/\/+$/, "") + "/v1";
  // No Aurora auth keys on a fresh node; the SDK insists on some key.
  const client = new OpenAI({ baseURL, apiKey: "not-needed", maxRetries: 0, timeout: 30_000 });

  const plain = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: PROMPT }],
  });
  const text = plain.choices[0]?.message?.content ?? "";
  check(plain.object === "chat.completion", `object ${plain.object}`);
  check(plain.choices[0].finish_reason === "stop", `finish_reason ${plain.choices[0].finish_reason}`);
  check(text.length > 0, "empty answer");
  check(plain.usage?.completion_tokens === 16, `usage ${JSON.stringify(plain.usage)}`);

  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content: PROMPT }],
    stream: true,
    stream_options: { include_usage: true },
  });
  const pieces = [];
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    check(chunk.object === "chat.completion.chunk", `chunk object ${chunk.object}`);
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta?.content) pieces.push(choice.delta.content);
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  const streamed = pieces.join("");
  check(streamed === text, `stream ${JSON.stringify(streamed)} != plain ${JSON.stringify(text)}`);
  check(finish === "stop", `stream finish_reason ${finish}`);
  check(usage?.total_tokens === plain.usage.total_tokens, `stream usage ${JSON.stringify(usage)}`);

  console.log(
    `PASS openai-node ${VERSION}: chat (${plain.usage.total_tokens} tokens) ` +
      `and streamed chat (${pieces.length} chunks) against ${MODEL} at ${baseURL}`,
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.log(`FAIL openai node client check: ${error?.name ?? "Error"}: ${error?.message ?? error}`);
    process.exit(1);
  },
);
