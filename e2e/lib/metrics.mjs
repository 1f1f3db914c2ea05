// vnrit e2e: vnrit's own reports as an operator reads them — `/api/stats` (JSON) and `/metrics`
// (Prometheus text, parsed strictly: a line that is not a comment or a sample fails the test).

/** GET `path` of a vnrit started by startServer (with its token); throws unless 200. */
async function get(server, path) {
  const res = await fetch(`${server.base}${path}?token=${encodeURIComponent(server.token)}`, {
    cache: 'no-store',
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200) throw new Error(`${path} answered ${res.status}: ${await res.text()}`);
  return res;
}

/** `/api/stats` as an object. */
export async function apiStats(server) {
  return (await get(server, '/api/stats')).json();
}

/** Parses Prometheus text into [{name, labels, value}]; throws on a malformed line. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/**
 * `/metrics`, parsed; `value(name, labels)` is the sample's value (undefined when absent).
 * @returns {Promise<{samples: {name: string, labels: object, value: number}[], value: (name: string, labels?: object) => number|undefined}>}
 */
export async function scrape(server) {
  const samples = parseMetrics(await (await get(server, '/metrics')).text());
  const value = (name, labels = {}) =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  return { samples, value };
}
