/**
 * The `fer` CLI runs itself under tcmalloc when Debian's libtcmalloc-minimal4 is installed, as
 * ../shared/bench/torch_bench.py does for PyTorch. The native backend allocates full-size activations per op; under
 * glibc malloc, buffers above the mmap threshold go back to the kernel on free and are faulted in (and zeroed) again on
 * the next step, which costs a large share of a training step. A process cannot switch allocators once started, so the
 * CLI re-executes itself with `LD_PRELOAD` set. `FER_MALLOC=glibc` opts out.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';

export const TCMALLOC_PATH = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4';
/** Set in the re-executed child: never re-execute twice (e.g. when the preload failed). */
const REEXEC_MARK = 'FER_MALLOC_REEXEC';

/** The allocator this process runs with (what `LD_PRELOAD` put in front of glibc's). */
export function allocatorInUse(env: NodeJS.ProcessEnv = process.env): 'tcmalloc' | 'glibc' {
  return /tcmalloc/.test(env.LD_PRELOAD ?? '') ? 'tcmalloc' : 'glibc';
}

/** The `--backend` value in argv (`--backend x` or `--backend=x`), or undefined. */
function backendArg(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--backend') return argv[i + 1];
    if (argv[i].startsWith('--backend=')) return argv[i].slice('--backend='.length);
  }
  return undefined;
}

/**
 * Whether to re-execute under tcmalloc: on Linux, with the library installed, not preloaded yet, not opted out
 * (`FER_MALLOC=glibc`), and a backend that may be native (named, or automatic selection: tcmalloc costs wasm and cpu
 * nothing, and the native backend is the one auto-selection prefers when its addon is built).
 */
export function shouldUseTcmalloc(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  exists: (p: string) => boolean = existsSync,
): boolean {
  if (process.platform !== 'linux' || env[REEXEC_MARK] || allocatorInUse(env) === 'tcmalloc') return false;
  if ((env.FER_MALLOC ?? '').toLowerCase() === 'glibc') return false;
  const backend = (backendArg(argv) ?? env.FER_BACKEND ?? 'auto').toLowerCase();
  if (backend !== 'auto' && backend !== 'native') return false;
  return exists(TCMALLOC_PATH);
}

/**
 * Runs this same command (node flags, script, arguments) in a child under tcmalloc, with stdio inherited and
 * SIGINT/SIGTERM passed on; resolves with its exit code.
 */
export function rerunUnderTcmalloc(
  argv: readonly string[] = process.argv,
  nodeFlags: readonly string[] = process.execArgv,
): Promise<number> {
  const env = {
    ...process.env,
    LD_PRELOAD: [TCMALLOC_PATH, process.env.LD_PRELOAD].filter(Boolean).join(' '),
    [REEXEC_MARK]: '1',
  };
  const child = spawn(process.execPath, [...nodeFlags, ...argv.slice(1)], { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      // A child killed by a signal exits like a shell reports it: 128 + the signal's number.
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}

/** For the CLI's backend line: which allocator a native run uses, and how to change it. */
export function allocatorNote(env: NodeJS.ProcessEnv = process.env, exists = existsSync): string {
  if (allocatorInUse(env) === 'tcmalloc') return 'malloc: tcmalloc (FER_MALLOC=glibc to opt out)';
  if ((env.FER_MALLOC ?? '').toLowerCase() === 'glibc') return 'malloc: glibc (FER_MALLOC=glibc)';
  return exists(TCMALLOC_PATH)
    ? 'malloc: glibc (tcmalloc preload failed)'
    : 'malloc: glibc (apt-get install -y libtcmalloc-minimal4 for the faster tcmalloc)';
}
