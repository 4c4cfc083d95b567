// Drives Warden with the official openai npm client over mTLS (client
// certificate via undici). Prints one JSON object with what it observed.
// Env: WARDEN_URL, SVID_DIR (svid.pem, svid_key.pem, svid_bundle.pem), MODEL_DENIED.
import fs from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { Agent, fetch } from "undici";

const dir = process.env.SVID_DIR;
const agent = new Agent({
  connect: {
    cert: fs.readFileSync(path.join(dir, "svid.pem")),
    key: fs.readFileSync(path.join(dir, "svid_key.pem")),
    ca: fs.readFileSync(path.join(dir, "svid_bundle.pem")),
    // Warden's SVID carries a SPIFFE URI SAN and the DNS name "localhost".
    servername: "localhost",
  },
});
const client = new OpenAI({
  baseURL: process.env.WARDEN_URL + "/v1",
  apiKey: "unused-identity-comes-from-the-certificate",
  fetch,
  fetchOptions: { dispatcher: agent },
  maxRetries: 0,
});

const out = {};
const chat = await client.chat.completions.create({
  model: "small",
  messages: [{ role: "user", content: "hello" }],
});
out.chat = { content: chat.choices[0].message.content, total_tokens: chat.usage.total_tokens };

let text = "";
let chunks = 0;
const stream = await client.chat.completions.create({
  model: "small",
  stream: true,
  messages: [{ role: "user", content: "stream please" }],
});
for await (const c of stream) {
  chunks++;
  if (c.choices.length === 0) out.unexpected_usage_chunk = true;
  for (const ch of c.choices) text += ch.delta?.content ?? "";
}
out.stream = { text, chunks };

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

try {
  await client.chat.completions.create({
    model: process.env.MODEL_DENIED,
    messages: [{ role: "user", content: "hello" }],
  });
  out.denied = { status: 200 };
} catch (e) {
  out.denied = { status: e.status, code: e.code, type: e.type, message: e.message };
}
console.log(JSON.stringify(out));
