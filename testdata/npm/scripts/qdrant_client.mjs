// Drives Warden with the official Qdrant JS REST client over mTLS (client
// certificate through an undici Agent substituted into every fetch).
// Prints one JSON object: {step: {ok, status, ids, tenants, names}}.
// Env: WARDEN_URL (https://localhost:port), SVID_DIR, PREFIX (route prefix).
import fs from "node:fs";
import path from "node:path";
import { Agent, fetch as undiciFetch } from "undici";

const dir = process.env.SVID_DIR;
const agent = new Agent({
  connect: {
    cert: fs.readFileSync(path.join(dir, "svid.pem")),
    key: fs.readFileSync(path.join(dir, "svid_key.pem")),
    ca: fs.readFileSync(path.join(dir, "svid_bundle.pem")),
    servername: "localhost",
  },
});
// The client passes its own undici Agent (no TLS options) on every request;
// substitute the one that presents the agent's SVID.
globalThis.fetch = (url, init) => undiciFetch(url, { ...init, dispatcher: agent });
const { QdrantClient } = await import("@qdrant/js-client-rest");
const client = new QdrantClient({ url: process.env.WARDEN_URL, prefix: process.env.PREFIX, checkCompatibility: false });

const idsOf = (v) => {
  if (Array.isArray(v)) return v.flatMap(idsOf);
  if (v && typeof v === "object") {
    if ("id" in v) return [String(v.id)];
    if ("points" in v) return idsOf(v.points);
  }
  return [];
};
const tenants = (v) => (JSON.stringify(v).match(/"tenant_id":"([a-z]+)"/g) ?? []).map((s) => s.slice(13, -1));

const steps = {
  collections: () => client.getCollections().then((r) => ({ names: r.collections.map((c) => c.name) })),
  search: () => client.query("docs", { query: [1, 1, 0, 0], limit: 10, with_payload: true }),
  scroll: () => client.scroll("docs", { limit: 10, with_payload: true }),
  upsert: () => client.upsert("docs", { wait: true, points: [{ id: 30, vector: [0, 0, 1, 0], payload: { text: "mine" } }] }),
  upsertForeign: () => client.upsert("docs", { wait: true, points: [{ id: 31, vector: [0, 0, 1, 0], payload: { tenant_id: "b" } }] }),
  escape: () => client.scroll("docs", { filter: { must_not: [{ key: "tenant_id", match: { value: "a" } }] } }),
  deleteCollection: () => client.deleteCollection("docs"),
};
const out = {};
for (const [name, fn] of Object.entries(steps)) {
  try {
    const r = await fn();
    out[name] = { ok: true, ids: idsOf(r), tenants: tenants(r), names: r?.names ?? null };
  } catch (e) {
    out[name] = { ok: false, status: e.status ?? null, error: e.data?.status?.error ?? (String(e.message ?? e) + (e.cause ? ": " + String(e.cause) : "")) };
  }
}
console.log(JSON.stringify(out));
