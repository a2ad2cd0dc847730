import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { NATIVE_BACKEND, registerNativeBackend, type NativeBackend } from 'fer-native';
import { BufferPool, POOL_MIN_ELEMENTS } from '../src/pool';
import { poolCapFromEnv } from '../src/backend';
import { describeNative } from './helpers';

/**
 * The output-buffer pool (src/pool.ts). Unit tests of its bookkeeping run everywhere; on the native backend, reuse
 * must never let a later kernel write into an array that something outside the backend still holds.
 */

const N = 4 * POOL_MIN_ELEMENTS;

describe('BufferPool', () => {
  it('reuses a reclaimed buffer for the next output of the same size only', () => {
    const pool = new BufferPool(1 << 30);
    const a = pool.float32(N);
    pool.adopt(a);
    pool.reclaim(a);
    expect(pool.snapshot()).toEqual({ hits: 0, misses: 1, freeBytes: N * 4, escaped: 0 });
    expect(pool.float32(N + 1).buffer).not.toBe(a.buffer); // another size: a fresh buffer
    const b = pool.float32(N);
    expect(b.buffer).toBe(a.buffer);
    expect(b).not.toBe(a); // a new view: the old one can no longer register or reclaim it
    pool.reclaim(a);
    expect(pool.snapshot().freeBytes).toBe(0);
    expect(pool.snapshot()).toMatchObject({ hits: 1, misses: 2 });
  });

  it('clear() lets the free buffers go; live ones still come back when disposed', () => {
    const pool = new BufferPool(1 << 30);
    const freed = pool.float32(N);
    const live = pool.float32(N);
    pool.adopt(freed);
    pool.adopt(live);
    pool.reclaim(freed);
    pool.clear();
    expect(pool.snapshot().freeBytes).toBe(0);
    const next = pool.float32(N);
    expect(next.buffer).not.toBe(freed.buffer); // dropped, not reused
    pool.reclaim(live);
    expect(pool.snapshot().freeBytes).toBe(N * 4);
    expect(pool.float32(N).buffer).toBe(live.buffer);
  });

  it('never reuses a buffer that was read, viewed or registered twice', () => {
    const pool = new BufferPool(1 << 30);
    const read = pool.float32(N);
    pool.adopt(read);
    pool.escape(read);
    pool.reclaim(read);
    const viewed = pool.float32(N);
    pool.adopt(viewed);
    pool.adopt(viewed.subarray(8, 16));
    pool.reclaim(viewed);
    const twice = pool.float32(N);
    pool.adopt(twice);
    pool.adopt(twice);
    pool.reclaim(twice);
    expect(pool.snapshot()).toEqual({ hits: 0, misses: 3, freeBytes: 0, escaped: 3 });
    // Escaping a buffer that waits in the pool takes it out.
    const free = pool.float32(N);
    pool.adopt(free);
    pool.reclaim(free);
    pool.escape(new Float32Array(free.buffer));
    expect(pool.snapshot().freeBytes).toBe(0);
    expect(pool.float32(N).buffer).not.toBe(free.buffer);
  });

  it('ignores arrays it did not hand out, and small outputs (zeroed, never pooled)', () => {
    const pool = new BufferPool(1 << 30);
    const user = new Float32Array(N);
    pool.adopt(user);
    pool.reclaim(user);
    const small = pool.float32(POOL_MIN_ELEMENTS - 1);
    expect(small.every((v) => v === 0)).toBe(true);
    pool.adopt(small);
    pool.reclaim(small);
    expect(pool.snapshot()).toEqual({ hits: 0, misses: 0, freeBytes: 0, escaped: 0 });
  });

  it('keeps at most capBytes free, evicting the oldest first; cap 0 never reuses', () => {
    const pool = new BufferPool(2 * N * 4);
    const bufs = [N, N + 1, N + 2].map((n) => pool.float32(n));
    for (const b of bufs) pool.adopt(b);
    for (const b of bufs) pool.reclaim(b);
    // N + (N+1) + (N+2) elements exceed 2N: the oldest (N) went, then N+1 as well (N+1 + N+2 > 2N).
    expect(pool.snapshot().freeBytes).toBe((N + 2) * 4);
    expect(pool.float32(N).buffer).not.toBe(bufs[0].buffer);
    expect(pool.float32(N + 2).buffer).toBe(bufs[2].buffer);

    const off = new BufferPool(0);
    const a = off.float32(N);
    off.adopt(a);
    off.reclaim(a);
    expect(off.float32(N).buffer).not.toBe(a.buffer);
    expect(off.snapshot().freeBytes).toBe(0);
  });

  it('returns an untaken buffer with giveBack, once', () => {
    const pool = new BufferPool(1 << 30);
    const a = pool.int32(N);
    pool.giveBack(a);
    pool.giveBack(a);
    expect(pool.snapshot().freeBytes).toBe(N * 4);
    expect(pool.float32(N).buffer).toBe(a.buffer); // any element type of the same byte size
  });

  it('reads FER_NATIVE_POOL_MB, refusing what is not a size', () => {
    expect(poolCapFromEnv({})).toBe(4096 * 2 ** 20);
    expect(poolCapFromEnv({ FER_NATIVE_POOL_MB: '0' })).toBe(0);
    expect(poolCapFromEnv({ FER_NATIVE_POOL_MB: '1.5' })).toBe(1.5 * 2 ** 20);
    expect(() => poolCapFromEnv({ FER_NATIVE_POOL_MB: 'lots' })).toThrow(
      "FER_NATIVE_POOL_MB: expected a number of megabytes ≥ 0 (0 turns buffer reuse off), but got 'lots'.",
    );
  });
});

describeNative('native backend buffer reuse', () => {
  let backend: NativeBackend;
  const seq = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => ((i * 37 + k) % 101) / 7 - 5);

  beforeAll(async () => {
    expect(registerNativeBackend().ok).toBe(true);
    await tf.setBackend(NATIVE_BACKEND);
    backend = tf.backend() as NativeBackend;
  });

  it('serves a disposed output to the next kernel of that size, with correct results and no leak', () => {
    const x = tf.tensor2d(seq(N, 1), [4, N / 4]);
    const y = tf.tensor2d(seq(N, 2), [4, N / 4]);
    const before = tf.memory().numTensors;
    const s0 = backend.poolStats();
    tf.add(x, y).dispose();
    const p = tf.mul(x, y);
    const s1 = backend.poolStats();
    expect(s1.hits - s0.hits).toBe(1);
    const xv = seq(N, 1);
    const yv = seq(N, 2);
    expect(Array.from(p.dataSync())).toEqual(Array.from(xv, (v, i) => Math.fround(v * yv[i])));
    p.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y]);
  });

  it('never writes into an array that dataSync() returned, even after its tensor is disposed', () => {
    const x = tf.tensor1d(seq(N, 3));
    const a = tf.relu(x);
    const held = a.dataSync();
    const copy = held.slice();
    a.dispose();
    const hits = backend.poolStats().hits;
    const b = tf.neg(x);
    expect(backend.poolStats().hits).toBe(hits);
    expect(held).toEqual(copy);
    tf.dispose([x, b]);
  });

  it('never reuses a buffer that a live slice views (cpu Slice shares its input)', () => {
    const x = tf.tensor2d(seq(N, 4), [4, N / 4]);
    const a = tf.relu(x);
    const rows = tf.slice(a, [1, 0], [2, N / 4]); // contiguous: tfjs-backend-cpu's Slice returns a view of a
    const copy = rows.dataSync().slice();
    a.dispose();
    const b = tf.neg(x);
    const c = tf.abs(x);
    expect(rows.dataSync()).toEqual(copy);
    tf.dispose([x, rows, b, c]);
  });

  it("never writes into a user's array", () => {
    const mine = seq(N, 5);
    const copy = mine.slice();
    tf.tensor1d(mine).dispose();
    const x = tf.tensor1d(seq(N, 6));
    const outs = [tf.relu(x), tf.neg(x)];
    expect(mine).toEqual(copy);
    tf.dispose([x, ...outs]);
  });
});
