import { existsSync } from 'node:fs';
import { TCMALLOC_PATH, allocatorInUse, allocatorNote, rerunUnderTcmalloc, shouldUseTcmalloc } from './allocator';

const yes = () => true;
const no = () => false;

describe('fer CLI allocator', () => {
  const linux = process.platform === 'linux';

  it('re-executes under tcmalloc for native or automatic backends only, once, unless opted out', () => {
    if (!linux) return;
    expect(shouldUseTcmalloc(['train'], {}, yes)).toBe(true);
    expect(shouldUseTcmalloc(['train', '--backend', 'native'], {}, yes)).toBe(true);
    expect(shouldUseTcmalloc(['train', '--backend=native'], { FER_BACKEND: 'wasm' }, yes)).toBe(true);
    expect(shouldUseTcmalloc(['train'], { FER_BACKEND: 'native' }, yes)).toBe(true);
    // Another backend, library missing, opted out, already preloaded, or already re-executed: no.
    expect(shouldUseTcmalloc(['train', '--backend', 'wasm'], {}, yes)).toBe(false);
    expect(shouldUseTcmalloc(['train'], { FER_BACKEND: 'cpu' }, yes)).toBe(false);
    expect(shouldUseTcmalloc(['train'], {}, no)).toBe(false);
    expect(shouldUseTcmalloc(['train'], { FER_MALLOC: 'glibc' }, yes)).toBe(false);
    expect(shouldUseTcmalloc(['train'], { LD_PRELOAD: TCMALLOC_PATH }, yes)).toBe(false);
    expect(shouldUseTcmalloc(['train'], { FER_MALLOC_REEXEC: '1' }, yes)).toBe(false);
  });

  it('names the allocator and how to change it', () => {
    expect(allocatorInUse({ LD_PRELOAD: `/x/libfoo.so ${TCMALLOC_PATH}` })).toBe('tcmalloc');
    expect(allocatorInUse({})).toBe('glibc');
    expect(allocatorNote({ LD_PRELOAD: TCMALLOC_PATH }, yes)).toBe('malloc: tcmalloc (FER_MALLOC=glibc to opt out)');
    expect(allocatorNote({ FER_MALLOC: 'glibc' }, yes)).toBe('malloc: glibc (FER_MALLOC=glibc)');
    expect(allocatorNote({}, no)).toMatch(/apt-get install -y libtcmalloc-minimal4/);
  });

  const withTcmalloc = linux && existsSync(TCMALLOC_PATH) ? it : it.skip;
  withTcmalloc('the re-executed command runs with tcmalloc loaded and passes its exit code back', async () => {
    // The child exits 7 when tcmalloc is mapped into it and it knows it was re-executed, 1 otherwise.
    const script =
      "const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');" +
      "process.exit(/libtcmalloc/.test(maps) && process.env.FER_MALLOC_REEXEC === '1' ? 7 : 1)";
    expect(await rerunUnderTcmalloc(['node', '-e', script], [])).toBe(7);
  });
});
