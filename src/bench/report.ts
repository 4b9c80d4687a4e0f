/**
 * Reports of a bench invocation: a console/Markdown table with Synod's ratio to each peer, and an
 * SVG chart of throughput and p99 latency against the number of clients, one line per system.
 */
import type { FsyncCeiling } from './ceilings.js';
import type { BenchResult } from './runner.js';

const SYNOD = 'synod';

function fmt(value: number, digits = 0): string {
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratio(a: number, b: number): string {
  return b === 0 ? '—' : `${(a / b).toFixed(2)}×`;
}

/** Systems in the order they first appear, Synod first. */
export function systemsOf(results: readonly BenchResult[]): string[] {
  const names = [...new Set(results.map((result) => result.system))];
  return names.sort((a, b) => (a === SYNOD ? -1 : b === SYNOD ? 1 : 0));
}

/** One row per (op, clients): each system's ops/s, p50 and p99, and Synod's throughput ratio to each other system. */
export function markdownTable(results: readonly BenchResult[]): string {
  const systems = systemsOf(results);
  const others = systems.filter((name) => name !== SYNOD);
  const header = ['op', 'clients', ...systems.flatMap((name) => [`${name} ops/s`, `${name} p50 ms`, `${name} p99 ms`]), ...others.map((name) => `synod/${name}`)];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---:').join('|')}|`];
  const keys = [...new Set(results.map((result) => `${result.op}\u0000${result.clients}`))];
  for (const key of keys) {
    const [op, clientsText] = key.split('\u0000') as [string, string];
    const clients = Number(clientsText);
    const row = (name: string): BenchResult | undefined => results.find((result) => result.system === name && result.op === op && result.clients === clients);
    const synod = row(SYNOD);
    const cells = [op, String(clients)];
    for (const name of systems) {
      const result = row(name);
      cells.push(result === undefined ? '—' : fmt(result.opsPerSec), result === undefined ? '—' : result.p50Ms.toFixed(2), result === undefined ? '—' : result.p99Ms.toFixed(2));
    }
    for (const name of others) {
      const result = row(name);
      cells.push(synod === undefined || result === undefined ? '—' : ratio(synod.opsPerSec, result.opsPerSec));
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/**
 * CPU per run: the load generator's µs per op, each server process's share of a core, and the
 * machine's CPU stolen by the hypervisor meanwhile.
 */
export function cpuTable(results: readonly BenchResult[]): string {
  const lines = ['| system | op | clients | client µs/op | servers µs/op | client CPU % | server CPU % (each process) | steal % | errors |', '|---|---|---:|---:|---:|---:|---|---:|---:|'];
  for (const result of results) {
    const servers = result.serverCpuPct.map((value) => (value === null ? '?' : value.toFixed(0))).join(' / ');
    lines.push(`| ${result.system} | ${result.op} | ${result.clients} | ${result.clientCpuUsPerOp ?? '?'} | ${result.serverCpuUsPerOp ?? '?'} | ${result.clientCpuPct ?? '?'} | ${servers} | ${result.stealPct ?? '?'} | ${result.errors} |`);
  }
  return lines.join('\n');
}

/** With `--repeat`: every run's ops/s behind each reported (median) result, or no lines. */
export function runLines(results: readonly BenchResult[]): string[] {
  return results
    .filter((result) => (result.opsPerSecRuns?.length ?? 0) > 1)
    .map((result) => `- ${result.system} ${result.op} at ${result.clients} clients: ${(result.opsPerSecRuns ?? []).map((run) => fmt(run)).join(' / ')} ops/s (median ${fmt(result.opsPerSec)})`);
}

export function ceilingLines(fsync: FsyncCeiling | null, results: readonly BenchResult[]): string[] {
  const lines: string[] = [];
  if (fsync !== null) lines.push(`- disk: ${fmt(fsync.fsyncsPerSec)} sequential 100-byte append+fdatasync per second (${fsync.fsyncMeanMs} ms each)`);
  for (const single of results.filter((result) => result.system === 'synod-1node')) {
    const synod = results.find((result) => result.system === SYNOD && result.op === single.op && result.clients === single.clients);
    if (synod === undefined) continue;
    lines.push(`- ${single.op} at ${single.clients} clients: unreplicated single node ${fmt(single.opsPerSec)} ops/s; 3-node Synod reaches ${((synod.opsPerSec / single.opsPerSec) * 100).toFixed(0)}% of it`);
  }
  return lines;
}

const COLORS: Record<string, string> = { synod: '#d62728', 'synod-1node': '#ff9896', etcd: '#1f77b4', zookeeper: '#2ca02c' };
const PALETTE = ['#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (char) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[char] ?? char);
}

/** Two panels side by side: ops/s and p99 (ms) against clients (log2 axis), one line per system. */
export function svgChart(results: readonly BenchResult[], title: string): string {
  const systems = systemsOf(results);
  const clients = [...new Set(results.map((result) => result.clients))].sort((a, b) => a - b);
  const width = 960;
  const height = 400;
  const panel = { width: 400, height: 280, top: 60 };
  const lefts = [70, 550];
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(title)}</text>`,
  ];
  const xOf = (left: number, count: number): number => {
    const logs = clients.map((value) => Math.log2(value));
    const min = Math.min(...logs);
    const max = Math.max(...logs);
    return left + (max === min ? panel.width / 2 : ((Math.log2(count) - min) / (max - min)) * panel.width);
  };
  const metrics: { label: string; value: (result: BenchResult) => number }[] = [
    { label: 'throughput (ops/s)', value: (result) => result.opsPerSec },
    { label: 'p99 latency (ms)', value: (result) => result.p99Ms },
  ];
  metrics.forEach((metric, panelIndex) => {
    const left = lefts[panelIndex] as number;
    const bottom = panel.top + panel.height;
    const top = Math.max(1e-9, ...results.map(metric.value)) * 1.1;
    const yOf = (value: number): number => bottom - (value / top) * panel.height;
    parts.push(`<text x="${left + panel.width / 2}" y="${panel.top - 12}" text-anchor="middle">${metric.label}</text>`);
    parts.push(`<line x1="${left}" y1="${bottom}" x2="${left + panel.width}" y2="${bottom}" stroke="black"/><line x1="${left}" y1="${panel.top}" x2="${left}" y2="${bottom}" stroke="black"/>`);
    for (let step = 0; step <= 4; step++) {
      const value = (top / 4) * step;
      const y = yOf(value);
      parts.push(`<line x1="${left}" y1="${y}" x2="${left + panel.width}" y2="${y}" stroke="#eee"/><text x="${left - 6}" y="${y + 4}" text-anchor="end">${fmt(value, value < 10 ? 1 : 0)}</text>`);
    }
    for (const count of clients) {
      const x = xOf(left, count);
      parts.push(`<text x="${x}" y="${bottom + 18}" text-anchor="middle">${count}</text>`);
    }
    parts.push(`<text x="${left + panel.width / 2}" y="${bottom + 36}" text-anchor="middle">clients</text>`);
    systems.forEach((name, index) => {
      const color = COLORS[name] ?? PALETTE[index % PALETTE.length] ?? 'black';
      const points = results.filter((result) => result.system === name).sort((a, b) => a.clients - b.clients)
        .map((result) => `${xOf(left, result.clients).toFixed(1)},${yOf(metric.value(result)).toFixed(1)}`);
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.join(' ')}"/>`);
      for (const point of points) {
        const [x, y] = point.split(',');
        parts.push(`<circle cx="${x}" cy="${y}" r="3" fill="${color}"/>`);
      }
    });
  });
  systems.forEach((name, index) => {
    const color = COLORS[name] ?? PALETTE[index % PALETTE.length] ?? 'black';
    const x = 70 + index * 160;
    parts.push(`<rect x="${x}" y="${height - 22}" width="14" height="4" fill="${color}"/><text x="${x + 20}" y="${height - 16}">${escapeXml(name)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
