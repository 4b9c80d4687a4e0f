#!/usr/bin/env node
// Summarizes V8 CPU profiles (from `synod bench --profile DIR` or `node --cpu-prof`): for each
// profile, the busy share and the functions with the most self time. Usage:
//   node bench/profile.mjs DIR_OR_FILE [TOP=25]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import console from 'node:console';
import process from 'node:process';

const target = process.argv[2];
const top = Number(process.argv[3] ?? 25);
if (target === undefined) {
  console.error('usage: node bench/profile.mjs DIR_OR_FILE [TOP]');
  process.exit(2);
}
const files = statSync(target).isDirectory()
  ? readdirSync(target).filter((name) => name.endsWith('.cpuprofile')).map((name) => join(target, name))
  : [target];
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const timeById = new Map();
  profile.samples.forEach((id, index) => timeById.set(id, (timeById.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0)));
  const self = new Map();
  let total = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const time = timeById.get(node.id) ?? 0;
    total += time;
    const name = node.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') idle += time;
    const where = node.callFrame.url === '' ? '' : ` ${node.callFrame.url.split('/').slice(-2).join('/')}:${node.callFrame.lineNumber + 1}`;
    const key = `${name}${where}`;
    self.set(key, (self.get(key) ?? 0) + time);
  }
  const busy = total - idle;
  console.log(`${file}: ${(total / 1e6).toFixed(1)} s profiled, ${((busy / total) * 100).toFixed(0)}% busy`);
  for (const [key, time] of [...self].filter(([key]) => !key.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${((time / busy) * 100).toFixed(1).padStart(5)}% of busy  ${key}`);
  }
}
