/**
 * The OpenMP spin count the addon loads libgomp with (src/addon.ts `withSpinCount`): set only while the addon loads,
 * never over a user's own wait policy, and never left in the environment for child processes; and the small
 * fer_env.node addon that sets it from worker threads.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ADDON_PATH, GOMP_SPIN_COUNT, withSpinCount, type Setenv } from '../src/addon';

const setenv: Setenv = (name, value) => {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
};

describe('withSpinCount', () => {
  const saved = { policy: process.env.OMP_WAIT_POLICY, spin: process.env.GOMP_SPINCOUNT };
  afterEach(() => {
    for (const [k, v] of [
      ['OMP_WAIT_POLICY', saved.policy],
      ['GOMP_SPINCOUNT', saved.spin],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  it('sets GOMP_SPINCOUNT during the load only, also when the load throws', () => {
    delete process.env.OMP_WAIT_POLICY;
    delete process.env.GOMP_SPINCOUNT;
    expect(withSpinCount(() => process.env.GOMP_SPINCOUNT, setenv)).toBe(GOMP_SPIN_COUNT);
    expect(process.env.GOMP_SPINCOUNT).toBeUndefined();
    expect(() =>
      withSpinCount(() => {
        throw new Error('dlopen failed');
      }, setenv),
    ).toThrow('dlopen failed');
    expect(process.env.GOMP_SPINCOUNT).toBeUndefined();
  });

  it("leaves a user's GOMP_SPINCOUNT or OMP_WAIT_POLICY alone", () => {
    process.env.GOMP_SPINCOUNT = '123';
    expect(withSpinCount(() => process.env.GOMP_SPINCOUNT, setenv)).toBe('123');
    expect(process.env.GOMP_SPINCOUNT).toBe('123');
    delete process.env.GOMP_SPINCOUNT;
    process.env.OMP_WAIT_POLICY = 'PASSIVE';
    expect(withSpinCount(() => process.env.GOMP_SPINCOUNT, setenv)).toBeUndefined();
    expect(process.env.OMP_WAIT_POLICY).toBe('PASSIVE');
  });

  it('without a setter, loads with the environment as it is', () => {
    delete process.env.OMP_WAIT_POLICY;
    delete process.env.GOMP_SPINCOUNT;
    expect(withSpinCount(() => process.env.GOMP_SPINCOUNT, null)).toBeUndefined();
  });
});

describe('build/fer_env.node', () => {
  const shim = path.join(path.dirname(ADDON_PATH), 'fer_env.node');
  const run = existsSync(shim) ? it : it.skip;

  run("sets the process's C environment from a worker thread, where process.env is only a copy", () => {
    // In a plain node process (jest replaces process.env with an object of its own): the worker sets the variable
    // through the shim; its own process.env copy stays unchanged, the main thread's (the C environment) has it.
    const name = 'FER_NATIVE_ENV_SHIM_TEST';
    const script = `
      const { Worker } = require('node:worker_threads');
      const src = \`
        const { parentPort } = require('node:worker_threads');
        const mod = { exports: {} };
        process.dlopen(mod, \${JSON.stringify(process.argv[1])});
        mod.exports.setenv('${name}', 'from-worker');
        parentPort.postMessage(process.env['${name}'] ?? null);
      \`;
      const w = new Worker(src, { eval: true });
      w.once('message', (inWorker) => {
        console.log(JSON.stringify({ inWorker, inMain: process.env['${name}'] ?? null }));
        w.terminate();
      });
    `;
    const env = { ...process.env };
    delete env[name];
    const out = execFileSync(process.execPath, ['-e', script, shim], { encoding: 'utf8', env });
    expect(JSON.parse(out)).toEqual({ inWorker: null, inMain: 'from-worker' });
  });
});
