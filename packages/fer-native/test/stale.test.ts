/**
 * A stale addon (built before its sources changed, e.g. a pulled checkout without a reinstall) is refused rather than
 * loaded with missing functions: the build script's recorded digest against the sources, as src/addon.ts checks it.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sourcesStale } from '../src/addon';

const NATIVE = path.resolve(__dirname, '..', 'native');

describe('fer-native stale-addon guard', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'fer-native-stale-'));
    cpSync(NATIVE, path.join(dir, 'native'), { recursive: true });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("accepts the build script's own digest and refuses it once a source changes", () => {
    // The build script's digest function, run on the copy (the same code the install runs).
    const script = path.resolve(__dirname, '..', 'scripts', 'build-addon.cjs');
    const src = readFileSync(script, 'utf8');
    const fn = src.slice(src.indexOf('function sourcesDigest'));
    const digest = execFileSync(process.execPath, [
      '-e',
      `const fs=require('fs'),path=require('path'),crypto=require('crypto');${fn};process.stdout.write(sourcesDigest(process.argv[1]))`,
      path.join(dir, 'native'),
    ]).toString();
    const record = path.join(dir, 'fer_native.sources');
    writeFileSync(record, digest);
    expect(sourcesStale(path.join(dir, 'native'), record)).toBe(false);
    const cc = readdirSync(path.join(dir, 'native')).find((f) => f.endsWith('.cc'))!;
    appendFileSync(path.join(dir, 'native', cc), '\n// changed\n');
    expect(sourcesStale(path.join(dir, 'native'), record)).toBe(true);
  });

  it('trusts a build without a record (built by hand) or without shipped sources', () => {
    expect(sourcesStale(path.join(dir, 'native'), path.join(dir, 'missing'))).toBe(false);
    expect(sourcesStale(path.join(dir, 'nowhere'), path.join(dir, 'fer_native.sources'))).toBe(false);
  });
});
