// Official TypeScript SDK client, driven by the Go interop test: connects
// to WARDEN_URL (the harness in front of the reference server) as the
// identity in WARDEN_PEER, lists tools, calls one allowed and one denied
// tool, and prints the outcome as one JSON line.
import { pathToFileURL } from "node:url";

const sdk = process.env.MCP_SDK_DIR;
const { Client } = await import(pathToFileURL(sdk + "/dist/esm/client/index.js").href);
const { StreamableHTTPClientTransport } = await import(pathToFileURL(sdk + "/dist/esm/client/streamableHttp.js").href);

const transport = new StreamableHTTPClientTransport(new URL(process.env.WARDEN_URL), {
  requestInit: { headers: { "X-Test-Peer": process.env.WARDEN_PEER } },
});
const client = new Client({ name: "warden-interop", version: "1.0.0" });
const out = {};
try {
  await client.connect(transport);
  out.protocolVersion = transport.protocolVersion ?? null;
  out.sessionId = transport.sessionId ?? null;
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : {});
    tools.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor);
  out.tools = tools.sort();
  const echo = await client.callTool({ name: "echo", arguments: { message: "hello through warden" } });
  out.echo = echo.content?.[0]?.text ?? null;
  try {
    await client.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } });
    out.denied = null;
  } catch (e) {
    out.denied = String(e?.message ?? e);
  }
  await transport.terminateSession().catch(() => {});
  await client.close();
} catch (e) {
  out.error = String(e?.stack ?? e);
}
console.log(JSON.stringify(out));
