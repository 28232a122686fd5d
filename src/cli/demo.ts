import { createNode, formatReason, isDown, isExit, type Context, type Exit, type Node, type Pid, type SystemMessage } from '../index.js';

type Job = { type: 'job'; n: number; replyTo: Pid<Result> };
type Result = { type: 'result'; n: number; square: number; by: string };

/**
 * The kernel demo behind `npm start`: a coordinator that traps exits links to two workers and
 * monitors them; one worker crashes on a job, the coordinator sees the exit, starts a replacement
 * and hands it the job again; a timer on the node's clock closes the round. It prints what happened.
 */
export async function runDemo(print: (line: string) => void = console.log): Promise<void> {
  const node = createNode({ name: 'demo' });
  node.telemetry.attach('demo', ['keel.process.exited'], (_event, _m, meta) => {
    print(`  event keel.process.exited: ${String(meta.pid)} ${formatReason(meta.reason as Error)} (watched: ${String(meta.watched)})`);
  });
  const coordinator = node.spawn<Result | 'report' | Exit>((ctx) => coordinatorInit(ctx, print), { name: 'coordinator' });
  print(`coordinator is ${String(coordinator)} (registered as 'coordinator')`);
  await exitOf(node, coordinator);
  print(`processes still alive: ${node.processes().length}`);
  await node.shutdown();
  print(`node ${node.name} shut down`);
}

function coordinatorInit(ctx: Context<Result | 'report' | Exit>, print: (line: string) => void) {
  ctx.trapExits();
  const results: Result[] = [];
  const workers = new Map<string, Pid<Job>>();
  let crashes = 0;
  const startWorker = (name: string): Pid<Job> => {
    const pid = ctx.spawnLink<Job>((w) => (msg) => {
      if (isDown(msg) || isExit(msg)) return;
      if (msg.n === 3 && crashes === 0) throw new Error(`${name} cannot square 3 today`);
      // eslint-disable-next-line keel/no-raw-send -- this part of the demo shows the raw runtime's send; the next one shows sendSupervised
      w.send(msg.replyTo, { type: 'result', n: msg.n, square: msg.n * msg.n, by: name });
    });
    workers.set(name, pid);
    print(`started worker ${name} as ${String(pid)} (linked)`);
    return pid;
  };
  const pending = new Map<number, string>(); // job -> worker name, until its result arrives
  const assign = (n: number, name: string): void => {
    pending.set(n, name);
    // eslint-disable-next-line keel/no-raw-send -- this part of the demo shows the raw runtime's send; the next one shows sendSupervised
    ctx.send(workers.get(name)!, { type: 'job', n, replyTo: ctx.self });
  };
  startWorker('alpha');
  startWorker('beta');
  for (let n = 1; n <= 6; n++) assign(n, n % 2 === 0 ? 'alpha' : 'beta');
  ctx.sendAfter(ctx.self, 'report', 25);
  return (msg: Result | 'report' | SystemMessage) => {
    if (isExit(msg)) {
      const name = [...workers].find(([, pid]) => pid === msg.from)?.[0] ?? '?';
      print(`coordinator trapped an exit from ${name}: ${formatReason(msg.reason)}`);
      crashes++;
      startWorker(name);
      // the crashed worker's mailbox died with it: hand its unanswered jobs to the replacement
      const lost = [...pending].filter(([, w]) => w === name).map(([n]) => n);
      print(`re-sending jobs ${lost.join(', ')} to the new ${name}`);
      for (const n of lost) assign(n, name);
    } else if (isDown(msg)) {
      print(`coordinator got a Down: ${formatReason(msg.reason)}`);
    } else if (msg === 'report') {
      results.sort((a, b) => a.n - b.n);
      print(`results: ${results.map((r) => `${r.n}^2=${r.square} by ${r.by}`).join(', ')}`);
      print(`crashes seen and recovered: ${crashes}; jobs unanswered: ${pending.size}`);
      for (const pid of workers.values()) ctx.exit(pid, 'shutdown');
      ctx.exit('normal');
    } else {
      pending.delete(msg.n);
      results.push(msg);
    }
  };
}

/** Resolves when `pid` exits, by a small watcher process that monitors it. */
function exitOf(node: Node, pid: Pid): Promise<void> {
  return new Promise((resolve) => {
    node.spawn((ctx) => {
      // eslint-disable-next-line keel/no-unmanaged-monitor -- a watcher process that lives exactly until the Down: nothing to demonitor
      ctx.monitor(pid);
      return (msg) => {
        if (isDown(msg)) {
          resolve();
          ctx.exit('normal');
        }
      };
    });
  });
}
