// `keel demo --nodes 3`: the cluster demo, run as a user runs it, from the compiled entry point (the
// nodes run on worker threads, which load the compiled dist/cli/clusterDemoNode.js beside it: a
// worker thread cannot load TypeScript). The private build of useBuiltPackage keeps the shared dist/
// out of it.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseDemoArgs, runDemoCommand } from '../../src/cli/demoCommand.js';
import { useBuiltPackage } from '../childProcesses.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const builtKeel = useBuiltPackage();

function keel(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const entry = fileURLToPath(new URL('cli/keel.js', builtKeel()));
  return new Promise((resolve) => {
    execFile(process.execPath, [entry, ...argv], { cwd: ROOT, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr });
    });
  });
}

describe('keel demo --nodes (the cluster demo)', () => {
  it('spreads the jobs over three worker-thread nodes, survives the death of one, and accounts for every job', async () => {
    const { code, stdout, stderr } = await keel(['demo', '--nodes', '3']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toContain("main: the coordinator's node, peers n1, n2, n3");
    for (const n of ['n1', 'n2', 'n3']) expect(lines.some((l) => l.startsWith(`node ${n} up on a worker thread (incarnation `))).toBe(true);
    expect(lines.some((l) => /^main: node n2 down \(port_closed\), \d+ ms after it was last heard$/.test(l))).toBe(true);
    // the worker's pid as the coordinator names it; the survivors name the same one
    const worker = /^coordinator: Down for n2's worker (<n2\.\d+>): noconnection; \d+ jobs it held go to n1, n3$/.exec(lines.find((l) => l.startsWith("coordinator: Down for n2's worker")) ?? '');
    expect(worker).not.toBeNull();
    expect(lines).toContain(`n1: Down for n2's worker ${worker![1]}: noconnection`);
    expect(lines).toContain(`n3: Down for n2's worker ${worker![1]}: noconnection`);
    expect(lines).toContain("node down: n2 (port_closed); the coordinator's Down: noconnection; the survivors': n1 noconnection, n3 noconnection");
    expect(lines).toContain('check every job answered once: 3000 of 3000, 0 duplicates: ok');
    // the accounting, read back: what was sent is what was answered plus what the dead node held
    const sent = /^check sent = answered \+ reassigned: (\d+) = 3000 \+ (\d+): ok$/.exec(lines.find((l) => l.startsWith('check sent')) ?? '');
    expect(sent).not.toBeNull();
    expect(Number(sent![1])).toBe(3000 + Number(sent![2]));
    const by = /^jobs: 3000; answered 3000, duplicates 0; by node: n1 (\d+), n2 (\d+), n3 (\d+)$/.exec(lines.find((l) => l.startsWith('jobs: ')) ?? '');
    expect(by).not.toBeNull();
    const [n1, n2, n3] = [Number(by![1]), Number(by![2]), Number(by![3])];
    expect(n1 + n2 + n3).toBe(3000);
    expect(n1).toBeGreaterThan(0);
    expect(n3).toBeGreaterThan(0);
    // each survivor's own count, asked by a call across nodes, is what it answered
    expect(lines).toContain(`check each survivor handled what it answered: n1 ${n1} = ${n1}, n3 ${n3} = ${n3}: ok`);
    expect(lines).toContain("check noconnection Downs for n2's worker on main and every survivor: ok");
    expect(lines).toContain('check the survivors left with a goodbye: n1 goodbye, n3 goodbye: ok');
    expect(lines.at(-1)).toBe("cluster demo passed: every job accounted for across the node's death");
  }, 120_000);

  it('takes --nodes from 2 to 8 and no other option beside it; bad usage exits 2', async () => {
    expect(parseDemoArgs(['--nodes', '3'])).toEqual({ nodes: 3 });
    expect(parseDemoArgs(['--nodes=8'])).toEqual({ nodes: 8 });
    for (const argv of [['--nodes', '1'], ['--nodes', '9'], ['--nodes', '2.5'], ['--nodes', 'NaN'], ['--nodes', '1e309'], ['--nodes'], ['--nodes', '3', '--seed', '2'], ['--nodes', '3', '--json']]) {
      const lines: string[] = [];
      expect(await runDemoCommand(argv, (l) => lines.push(l)), argv.join(' ')).toBe(2);
      expect(lines.length).toBe(1);
      expect(lines[0]).toMatch(/^keel demo: /);
      expect(lines[0]).toContain('--nodes');
    }
  });
});

describe('the cluster demo catches its own faults', () => {
  it('a node that answers a job twice fails the report (duplicates), and the command would exit 1', async () => {
    // the coordinator from the TypeScript source, the nodes from the private build (workers cannot load .ts)
    const { clusterDemoPassed, runClusterDemo } = await import('../../src/cli/clusterDemo.js');
    const lines: string[] = [];
    const report = await runClusterDemo({ nodes: 2, jobs: 300, inject: { duplicateResult: 'n1', script: new URL('cli/clusterDemoNode.js', builtKeel()) } }, (l) => lines.push(l));
    expect(report.duplicates).toBe(1);
    expect(report.answered).toBe(300);
    expect(report.checks).toEqual({ allAnswered: false, sentAccounted: true, survivorsAccounted: false, downsSeen: true, goodbyes: true });
    expect(clusterDemoPassed(report)).toBe(false);
    expect(lines).toContain('check every job answered once: 300 of 300, 1 duplicates: FAILED');
    expect(lines.at(-1)).toBe('cluster demo FAILED: a check above did not hold');
  }, 120_000);
});
