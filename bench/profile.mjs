#!/usr/bin/env node
// Summarizes V8 CPU profiles (from `synod bench --profile DIR` or `node --cpu-prof`): for each
// profile, the busy share and the functions with the most self time, and optionally the most
// inclusive time (a function and everything it called). Usage:
//   node bench/profile.mjs DIR_OR_FILE [TOP=25] [--skip SECONDS] [--inclusive]
// --skip leaves out the first SECONDS of each profile (start-up, module compilation, the bench's
// key preparation and warm-up) and its last second (shutdown), so the figures describe the
// steady state of the measured run.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import console from 'node:console';
import process from 'node:process';

const args = process.argv.slice(2);
const flag = (name) => {
  const index = args.indexOf(name);
  if (index === -1) return null;
  const [, value] = args.splice(index, 2);
  return value ?? null;
};
const inclusive = args.includes('--inclusive');
if (inclusive) args.splice(args.indexOf('--inclusive'), 1);
const skipSeconds = Number(flag('--skip') ?? 0);
const [target, topText] = args;
const top = Number(topText ?? 25);
if (target === undefined || !Number.isFinite(skipSeconds) || skipSeconds < 0 || !Number.isSafeInteger(top)) {
  console.error('usage: node bench/profile.mjs DIR_OR_FILE [TOP] [--skip SECONDS] [--inclusive]');
  process.exit(2);
}
const files = statSync(target).isDirectory()
  ? readdirSync(target).filter((name) => name.endsWith('.cpuprofile')).map((name) => join(target, name))
  : [target];

function frameKey(node) {
  const name = node.callFrame.functionName || '(anonymous)';
  const where = node.callFrame.url === '' ? '' : ` ${node.callFrame.url.split('/').slice(-2).join('/')}:${node.callFrame.lineNumber + 1}`;
  return `${name}${where}`;
}

for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const windowStart = profile.startTime + skipSeconds * 1e6;
  const windowEnd = skipSeconds > 0 ? profile.endTime - 1e6 : profile.endTime;
  const self = new Map();
  const total = new Map();
  let sampled = 0;
  let idle = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, index) => {
    at += profile.timeDeltas[index] ?? 0;
    // A sample stands for the time until the next one.
    const time = profile.timeDeltas[index + 1] ?? 0;
    if (at < windowStart || at > windowEnd) return;
    sampled += time;
    const node = byId.get(id);
    const key = frameKey(node);
    if (key.startsWith('(idle)')) {
      idle += time;
      return;
    }
    self.set(key, (self.get(key) ?? 0) + time);
    if (!inclusive) return;
    // Each frame once per sample, however often it recurs on the stack; bounded by the stack depth.
    const seen = new Set();
    for (let current = id; current !== undefined; current = parentOf.get(current)) {
      const frame = frameKey(byId.get(current));
      if (seen.has(frame)) continue;
      seen.add(frame);
      total.set(frame, (total.get(frame) ?? 0) + time);
    }
  });
  const busy = sampled - idle;
  const window = skipSeconds > 0 ? ` (after the first ${skipSeconds} s)` : '';
  console.log(`${file}: ${(sampled / 1e6).toFixed(1)} s profiled${window}, ${((busy / Math.max(1, sampled)) * 100).toFixed(0)}% busy`);
  const print = (title, times) => {
    if (title !== null) console.log(`  ${title}`);
    for (const [key, time] of [...times].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`  ${((time / Math.max(1, busy)) * 100).toFixed(1).padStart(5)}% of busy  ${key}`);
    }
  };
  print(inclusive ? 'self time:' : null, self);
  if (inclusive) print('inclusive time:', total);
}
