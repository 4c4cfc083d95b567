// Official Qdrant JS REST client (@qdrant/js-client-rest), driven by the Go
// interop test: talks to WARDEN_URL (the test harness in front of the
// qdranttest stand-in) as the identity in WARDEN_PEER, runs a fixed list of
// calls and prints one JSON line: {step: {ok, status, ids, error}}.
import { pathToFileURL } from "node:url";

const dir = process.env.QDRANT_CLIENT_DIR;
const { QdrantClient } = await import(pathToFileURL(dir + "/dist/esm/index.js").href);

const client = new QdrantClient({
  url: process.env.WARDEN_URL,
  checkCompatibility: false,
  headers: { "X-Test-Peer": process.env.WARDEN_PEER },
});

const idsOf = (v) => {
  if (Array.isArray(v)) return v.flatMap(idsOf);
  if (v && typeof v === "object") {
    if ("id" in v) return [String(v.id)];
    if ("points" in v) return idsOf(v.points);
  }
  return [];
};
const tenants = (v) => JSON.stringify(v).match(/"tenant_id":"([a-z]+)"/g) ?? [];

const steps = {
  collections: () => client.getCollections().then((r) => ({ names: r.collections.map((c) => c.name) })),
  query: () => client.query("kb", { query: [1, 0, 0], limit: 10, with_payload: true }),
  queryFiltered: () =>
    client.query("kb", { query: [1, 0, 0], filter: { should: [{ has_id: [3] }, { key: "topic", match: { value: "billing" } }] }, with_payload: true }),
  queryPrefetch: () =>
    client.query("kb", { prefetch: [{ query: [1, 0, 0], limit: 5 }], query: [1, 0, 0], with_payload: true }),
  queryBatch: () => client.queryBatch("kb", { searches: [{ query: [1, 0, 0], with_payload: true }] }),
  queryById: () => client.query("kb", { query: 3 }),
  scroll: () => client.scroll("kb", { limit: 10 }),
  count: () => client.count("kb", {}).then((r) => ({ count: r.count })),
  retrieve: () => client.retrieve("kb", { ids: [1, 3] }),
  upsert: () =>
    client.upsert("kb", { wait: true, points: [{ id: 20, vector: [0, 0, 1], payload: { topic: "js" } }] }),
  upsertForeign: () =>
    client.upsert("kb", { wait: true, points: [{ id: 21, vector: [0, 0, 1], payload: { tenant_id: "globex" } }] }),
  overrideTenant: () =>
    client.scroll("kb", { filter: { must: [{ key: "tenant_id", match: { value: "globex" } }] } }),
  setPayloadOther: () => client.setPayload("kb", { payload: { topic: "mine" }, points: [3], wait: true }),
  deleteOther: () => client.delete("kb", { points: [3], wait: true }),
  afterWrites: () => client.scroll("kb", { limit: 20 }),
  deleteCollection: () => client.deleteCollection("kb"),
};

const out = {};
for (const [name, fn] of Object.entries(steps)) {
  try {
    const r = await fn();
    out[name] = { ok: true, ids: idsOf(r), tenants: tenants(r), names: r?.names ?? null, count: r?.count ?? null };
  } catch (e) {
    out[name] = { ok: false, status: e.status ?? null, error: e.data?.status?.error ?? String(e.message ?? e) };
  }
}
console.log(JSON.stringify(out));
