/**
 * Reuses the output buffers of the native kernels once their tensors are disposed.
 *
 * Why: a training step allocates gigabytes of feature maps. Fresh ArrayBuffers are freed only when V8 collects them,
 * and V8 collects in proportion to the external memory it sees allocated: about a hundred collections per ESR step on
 * the main thread (the second core idles meanwhile), plus fresh pages to fault in. Handing a disposed tensor's buffer
 * to the next output of the same size avoids both.
 *
 * Safety: a buffer is reused only when this pool handed it out, exactly one tensor registered it (the very view handed
 * out), and nothing outside the backend ever saw it. `read`/`readSync` (so `dataSync()`, `data()`, `arraySync()`)
 * return the backend's own array, and a kernel may register a view of it (tfjs-backend-cpu's `Slice`): either marks
 * the buffer escaped, and an escaped buffer is left to the garbage collector as before. A user's own arrays
 * (`tf.tensor(values)`) are never pooled: the pool does not know them.
 */

type Pooled = Float32Array | Int32Array;

interface Meta {
  /** The view handed out last (the only object allowed to register the buffer). */
  view: Pooled | null;
  /** handed: out of the pool, not registered yet; live: one tensor's data; free: in the pool. */
  state: 'handed' | 'live' | 'free';
  escaped: boolean;
}

export interface PoolStats {
  /** Outputs served from a disposed tensor's buffer, and those that needed a new one. */
  hits: number;
  misses: number;
  /** Bytes waiting in the pool for reuse. */
  freeBytes: number;
  /** Buffers that left the backend's control (read or viewed) and were left to the garbage collector. */
  escaped: number;
}

/** Outputs below this many elements are allocated (zeroed) as before: the collector handles them cheaply. */
export const POOL_MIN_ELEMENTS = 1024;

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  /** Free buffers, oldest first: evicted in this order past the cap. */
  private readonly order = new Set<ArrayBuffer>();
  private readonly meta = new WeakMap<ArrayBufferLike, Meta>();
  private readonly stats: PoolStats = { hits: 0, misses: 0, freeBytes: 0, escaped: 0 };

  /** capBytes: the most free bytes kept (0 turns reuse off: every output is a fresh buffer, as without a pool). */
  constructor(readonly capBytes: number) {}

  /** An uninitialised Float32Array of n elements (zeroed below POOL_MIN_ELEMENTS); the caller writes every element. */
  float32(n: number): Float32Array {
    if (n < POOL_MIN_ELEMENTS) return new Float32Array(n);
    return this.view(n, (buf) => new Float32Array(buf, 0, n));
  }

  /** As float32, for int32 data. */
  int32(n: number): Int32Array {
    if (n < POOL_MIN_ELEMENTS) return new Int32Array(n);
    return this.view(n, (buf) => new Int32Array(buf, 0, n));
  }

  /** Returns a buffer that a kernel took but did not register (it fell back to another kernel). */
  giveBack(values: Pooled): void {
    const m = this.meta.get(values.buffer);
    if (m && m.state === 'handed' && m.view === values && !m.escaped) this.putFree(values.buffer as ArrayBuffer, m);
  }

  /** The backend registered `values` as a tensor's data (every `write`). */
  adopt(values: unknown): void {
    const m = ArrayBuffer.isView(values) ? this.meta.get(values.buffer) : undefined;
    if (!m || m.escaped) return;
    if (m.state === 'handed' && m.view === values) m.state = 'live';
    else this.escape(values); // a view of it, or a second registration: its owner can no longer be known
  }

  /** `values` left the backend (a read): never reuse its buffer. */
  escape(values: unknown): void {
    const m = ArrayBuffer.isView(values) ? this.meta.get(values.buffer) : undefined;
    if (!m || m.escaped) return;
    if (m.state === 'free') this.removeFree((values as Pooled).buffer as ArrayBuffer);
    m.escaped = true;
    m.view = null;
    this.stats.escaped++;
  }

  /** A tensor's data was deleted: its buffer goes back to the pool when the pool may reuse it. */
  reclaim(values: unknown): void {
    const m = ArrayBuffer.isView(values) ? this.meta.get(values.buffer) : undefined;
    if (m && m.state === 'live' && m.view === values && !m.escaped)
      this.putFree((values as Pooled).buffer as ArrayBuffer, m);
  }

  /** Drops every free buffer (the collector frees them). */
  clear(): void {
    for (const buf of this.order) this.meta.delete(buf);
    this.free.clear();
    this.order.clear();
    this.stats.freeBytes = 0;
  }

  snapshot(): PoolStats {
    return { ...this.stats };
  }

  private view<T extends Pooled>(n: number, make: (buf: ArrayBuffer) => T): T {
    const bytes = n * 4;
    const buf = this.free.get(bytes)?.pop();
    let out: T;
    if (buf) {
      this.order.delete(buf);
      this.stats.freeBytes -= bytes;
      this.stats.hits++;
      out = make(buf);
      const m = this.meta.get(buf)!;
      m.state = 'handed';
      m.view = out;
    } else {
      this.stats.misses++;
      // allocUnsafeSlow: uninitialised, and never a slice of Node's shared small-buffer pool.
      out = make(Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer);
      if (this.capBytes > 0) this.meta.set(out.buffer, { view: out, state: 'handed', escaped: false });
    }
    return out;
  }

  private putFree(buf: ArrayBuffer, m: Meta): void {
    m.state = 'free';
    m.view = null;
    const list = this.free.get(buf.byteLength) ?? [];
    list.push(buf);
    this.free.set(buf.byteLength, list);
    this.order.add(buf);
    this.stats.freeBytes += buf.byteLength;
    for (const old of this.order) {
      if (this.stats.freeBytes <= this.capBytes) break;
      this.removeFree(old);
      this.meta.delete(old);
    }
  }

  private removeFree(buf: ArrayBuffer): void {
    const list = this.free.get(buf.byteLength);
    const i = list ? list.lastIndexOf(buf) : -1;
    if (i < 0) return;
    list!.splice(i, 1);
    if (list!.length === 0) this.free.delete(buf.byteLength);
    this.order.delete(buf);
    this.stats.freeBytes -= buf.byteLength;
  }
}
