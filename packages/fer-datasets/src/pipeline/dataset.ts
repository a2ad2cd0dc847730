/**
 * `ImageDataset`: the one dataset implementation behind every source. A source lists `SampleRecord`s; this class
 * caps, shuffles, batches, decodes (via an executor, possibly in worker threads) and builds tensors on the
 * caller's tfjs backend.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import {
  FerInputError,
  Rng,
  mixSeed,
  type Batch,
  type BatchOptions,
  type Emotion,
  type FerDataset,
  type LabelSet,
} from 'fer-core';
import { evalTransform, type Transform } from './augment';
import { createExecutor } from './executor';
import type { ChannelOrder, CropBox, PixelImage, ResizeMode } from './image';
import { produceItem, type ItemSpec, type PipelineConfig } from './process';

/** One sample as a source lists it. */
export interface SampleRecord {
  /** Image file (absent for synthetic samples). */
  path?: string;
  /** Face box cut out before resizing. */
  crop?: CropBox;
  /** Procedurally drawn sample (synthetic source). */
  synthetic?: { seed: number; emotion: Emotion };
  emotion: Emotion;
  /** Optional distribution over the dataset's `labels` (e.g. FER+ votes). */
  soft?: number[];
  /** AffectNet's continuous annotations, when known. */
  valence?: number;
  arousal?: number;
}

/** Something a source or the pipeline found wrong with the input; reported once, never fatal on its own. */
export interface DatasetProblem {
  kind:
    | 'missing-file'
    | 'unreadable-image'
    | 'malformed-row'
    | 'unknown-label'
    | 'dropped-label'
    | 'empty-class'
    | 'other';
  message: string;
  path?: string;
  /** 0-based data row of a CSV or list file (header excluded), when the problem comes from one. */
  row?: number;
}

export interface PipelineOptions {
  /** Output side in pixels (square). Default 96 (ESR); 224 for MA-Net. */
  imageSize?: number;
  channelOrder?: ChannelOrder;
  resize?: ResizeMode;
  /**
   * Augmentation: `false`/omitted for the source's evaluation transform, `true` for the source's reference
   * training transform, or an explicit `Transform`.
   */
  augment?: boolean | Transform;
  /** Per-class cap: at most this many samples per label, a random subset redrawn by `redraw(seed)`. */
  cap?: number;
  /** Seed of the first capped draw. Default 0. */
  capSeed?: number;
  /** `epoch`: redraw the capped subset at every `batches()` call from (capSeed, epoch). Default `manual`. */
  redrawCap?: 'manual' | 'epoch';
  /**
   * Decoding worker threads; 0 decodes in the calling thread. Default min(2, cores − 1) (0 under jest from sources).
   */
  workers?: number;
  /** Batches decoded ahead of the consumer. Default max(2, 2 · workers). */
  prefetch?: number;
  /** Stop when more than this fraction of the images tried in one pass are unreadable. Default 0.5. */
  maxBadFraction?: number;
  /** Where warnings go (default `console.warn`). */
  onWarning?: (message: string) => void;
}

export interface ImageDatasetInit extends Omit<PipelineOptions, 'augment'> {
  name: string;
  labels: LabelSet;
  samples: SampleRecord[];
  transform?: Transform;
  /** Problems the source found while listing (reported once, at construction). */
  problems?: DatasetProblem[];
}

/** The deterministic part of a dataset's input pipeline (see `ImageDataset.preprocessing`). */
export interface Preprocessing {
  imageSize: number;
  channelOrder: ChannelOrder;
  resize: ResizeMode;
  /** Per-channel mean/std applied after scaling to [0, 1]; absent when inputs stay in [0, 1]. */
  normalize?: { mean: number[]; std: number[] };
  labels: Emotion[];
}

/** One sample's pixels, without tfjs. */
export interface SamplePixels {
  image: PixelImage;
  label: number;
  record: SampleRecord;
}

/**
 * min(2, cores − 1) worker threads; 0 under jest when running from TypeScript sources, where each worker would
 * have to compile the sources again (about a second per `batches()` call). Pass `workers` to override.
 */
function defaultWorkers(): number {
  if (process.env.JEST_WORKER_ID !== undefined && typeof __filename === 'string' && __filename.endsWith('.ts'))
    return 0;
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return Math.max(0, Math.min(2, cores - 1));
}

export class ImageDataset implements FerDataset {
  readonly name: string;
  readonly labels: LabelSet;
  /** Every listed sample (before the cap). */
  readonly records: readonly SampleRecord[];
  /** What went wrong while listing and loading (missing files, malformed rows, unreadable images, ...). */
  readonly problems: DatasetProblem[];
  /** Counts from listing (listed, kept, dropped by reason, ...), filled by the source. */
  readonly stats: Record<string, number> = {};
  readonly config: PipelineConfig;
  readonly workers: number;
  readonly prefetch: number;
  private readonly labelOf: Int32Array;
  private readonly cap: number | undefined;
  private readonly capSeed: number;
  private readonly redrawCap: 'manual' | 'epoch';
  private readonly maxBadFraction: number;
  private readonly warn: (m: string) => void;
  private readonly bad = new Map<number, string>();
  private active: Int32Array;
  private warnedBad = 0;

  constructor(init: ImageDatasetInit) {
    this.name = init.name;
    this.labels = init.labels;
    this.records = init.samples;
    this.problems = [...(init.problems ?? [])];
    this.warn = init.onWarning ?? ((m) => console.warn(m));
    const imageSize = init.imageSize ?? 96;
    if (!Number.isInteger(imageSize) || imageSize <= 0) {
      throw new FerInputError(`Expected imageSize to be a positive integer, but got ${imageSize}.`);
    }
    if (init.cap !== undefined && (!Number.isInteger(init.cap) || init.cap <= 0)) {
      throw new FerInputError(`Expected cap to be a positive integer (images per class), but got ${init.cap}.`);
    }
    this.config = {
      imageSize,
      channelOrder: init.channelOrder ?? 'rgb',
      resize: init.resize ?? 'bilinear',
      transform: init.transform ?? evalTransform(),
    };
    this.workers = init.workers ?? defaultWorkers();
    this.prefetch = init.prefetch ?? Math.max(2, 2 * this.workers);
    this.cap = init.cap;
    this.capSeed = init.capSeed ?? 0;
    this.redrawCap = init.redrawCap ?? 'manual';
    this.maxBadFraction = init.maxBadFraction ?? 0.5;
    this.labelOf = new Int32Array(init.samples.length);
    init.samples.forEach((s, i) => {
      const k = this.labels.indexOf(s.emotion);
      if (k < 0) throw new Error(`Sample ${i} has emotion '${s.emotion}', which is not in ${this.name}'s labels.`);
      this.labelOf[i] = k;
    });
    if (init.samples.length === 0) {
      throw new FerInputError(
        `Dataset ${this.name} has no samples.`,
        this.problems.length ? `First problem: ${this.problems[0].message}` : undefined,
      );
    }
    this.active = this.draw(this.capSeed);
    if (this.problems.length) this.warn(summariseProblems(this.name, this.problems));
  }

  /** Samples one epoch yields (the capped subset, minus images already found unreadable). */
  get size(): number {
    if (!this.bad.size) return this.active.length;
    let n = 0;
    for (const i of this.active) if (!this.bad.has(i)) n++;
    return n;
  }

  /**
   * How inputs are prepared, minus the random augmentation: what a model trained on this dataset expects at
   * inference (save it with the model; `loadImage` + `normalize` reproduce it for `fer predict`).
   */
  preprocessing(): Preprocessing {
    const norm = this.config.transform.ops.find((o) => o.op === 'normalize');
    return {
      imageSize: this.config.imageSize,
      channelOrder: this.config.channelOrder,
      resize: this.config.resize,
      ...(norm && norm.op === 'normalize' ? { normalize: { mean: [...norm.mean], std: [...norm.std] } } : {}),
      labels: [...this.labels],
    };
  }

  /** Per-label counts of the current subset, in `labels` order. */
  classCounts(): number[] {
    const c = new Array(this.labels.length).fill(0);
    for (const i of this.active) if (!this.bad.has(i)) c[this.labelOf[i]]++;
    return c;
  }

  /** The current subset's records, in listing order. */
  activeRecords(): SampleRecord[] {
    return Array.from(this.active, (i) => this.records[i]);
  }

  /**
   * Draws a fresh capped subset (per class, uniformly at random, without replacement) from `seed`, as the
   * reference does by rebuilding its dataset per stage (docs/method.md#affectnet). Without a cap this keeps every
   * sample.
   */
  redraw(seed: number): void {
    this.active = this.draw(seed);
  }

  private draw(seed: number): Int32Array {
    const n = this.records.length;
    if (this.cap === undefined) return Int32Array.from({ length: n }, (_, i) => i);
    const byClass: number[][] = this.labels.map(() => []);
    for (let i = 0; i < n; i++) byClass[this.labelOf[i]].push(i);
    const rng = new Rng(mixSeed(seed, 0xca9));
    const keep: number[] = [];
    for (const members of byClass) {
      if (members.length <= this.cap) {
        keep.push(...members);
        continue;
      }
      // Partial Fisher-Yates: the first `cap` entries become a uniform random subset.
      for (let j = 0; j < this.cap; j++) {
        const r = j + rng.int(members.length - j);
        [members[j], members[r]] = [members[r], members[j]];
      }
      keep.push(...members.slice(0, this.cap));
    }
    return Int32Array.from(keep.sort((a, b) => a - b));
  }

  private itemSpec(i: number, augSeed: number, epoch: number): ItemSpec {
    const r = this.records[i];
    return { path: r.path, crop: r.crop, synthetic: r.synthetic, seed: mixSeed(augSeed, epoch, i) };
  }

  /**
   * One sample's pixels (no tfjs), index into the current subset in listing order. Augmentation is seeded by
   * (seed, epoch, sample) exactly as in `batches()`, so this reproduces what a batch would contain.
   */
  async sample(index: number, opts: { seed?: number; epoch?: number } = {}): Promise<SamplePixels> {
    if (!Number.isInteger(index) || index < 0 || index >= this.active.length) {
      throw new FerInputError(`Expected a sample index in [0, ${this.active.length}), but got ${index}.`);
    }
    const i = this.active[index];
    const image = await produceItem(this.itemSpec(i, opts.seed ?? 0, opts.epoch ?? 0), this.config);
    return { image, label: this.labelOf[i], record: this.records[i] };
  }

  /**
   * Yields batches: `images` [n, S, S, 3] float32, `labels` [n] int32, and `soft` [n, K] when every sample has
   * a distribution. The caller owns and must dispose each batch's tensors. Breaking out of the loop, an aborted
   * `signal` or an error releases the workers.
   *
   * Order: shuffled by (seed, epoch) when `shuffle` (default: when a seed is given), else listing order.
   * Unreadable images are skipped (the batch is smaller), counted in `problems` and warned about once; the
   * iteration throws when most images tried are unreadable.
   */
  async *batches(opts: BatchOptions): AsyncGenerator<Batch> {
    const { batchSize } = opts;
    if (!Number.isInteger(batchSize) || batchSize <= 0) {
      throw new FerInputError(`Expected batchSize to be a positive integer, but got ${batchSize}.`);
    }
    const epoch = opts.epoch ?? 0;
    const seed = opts.seed ?? 0;
    if (this.redrawCap === 'epoch' && this.cap !== undefined) this.active = this.draw(mixSeed(this.capSeed, epoch));
    const order = Array.from(this.active).filter((i) => !this.bad.has(i));
    if (opts.shuffle ?? opts.seed !== undefined) new Rng(mixSeed(seed, epoch, 0x5eed)).shuffle(order);
    const chunks: number[][] = [];
    for (let s = 0; s < order.length; s += batchSize) {
      const c = order.slice(s, s + batchSize);
      if (c.length < batchSize && opts.dropRemainder) break;
      chunks.push(c);
    }
    const soft = this.records.length > 0 && this.records.every((r) => r.soft !== undefined);
    const K = this.labels.length;
    const px = this.config.imageSize * this.config.imageSize * 3;
    const S = this.config.imageSize;
    const signal = opts.signal;
    if (signal?.aborted || !chunks.length) return;

    const exec = createExecutor(this.config, this.workers, this.warn);
    const pending: { chunk: number[]; result: Promise<import('./process').JobResult> }[] = [];
    let next = 0;
    const pump = () => {
      while (pending.length < this.prefetch && next < chunks.length) {
        const chunk = chunks[next++];
        const result = exec.run(chunk.map((i) => this.itemSpec(i, seed, epoch)));
        result.catch(() => {}); // observed below; avoids unhandled rejections when abandoned
        pending.push({ chunk, result });
      }
    };
    let tried = 0;
    let failed = 0;
    const newlyBad: number[] = [];
    try {
      pump();
      while (pending.length) {
        const { chunk, result } = pending.shift()!;
        const res = await raceAbort(result, signal);
        if (!res) return;
        pump();
        const ok: number[] = [];
        res.errors.forEach((err, j) => {
          if (!err) return ok.push(j);
          const idx = chunk[j];
          this.bad.set(idx, err);
          newlyBad.push(idx);
          this.problems.push({ kind: 'unreadable-image', message: err, path: this.records[idx].path });
          if (this.warnedBad++ < 3) this.warn(`fer-datasets: ${this.name}: skipping ${err}`);
        });
        tried += chunk.length;
        failed += chunk.length - ok.length;
        const last = pending.length === 0 && next >= chunks.length;
        if ((tried >= 20 || last) && failed > this.maxBadFraction * tried) {
          throw new FerInputError(
            `${failed} of ${tried} images tried in ${this.name} could not be read (e.g. ${res.errors.find((e) => e) ?? this.bad.values().next().value}).`,
            'Check the dataset root and that the files are complete images.',
          );
        }
        if (!ok.length) continue;
        const n = ok.length;
        const data = n === chunk.length ? res.images : new Float32Array(n * px);
        if (n !== chunk.length) ok.forEach((j, k) => data.set(res.images.subarray(j * px, (j + 1) * px), k * px));
        const labels = Int32Array.from(ok, (j) => this.labelOf[chunk[j]]);
        let softData: Float32Array | undefined;
        if (soft) {
          softData = new Float32Array(n * K);
          ok.forEach((j, k) => softData!.set(this.records[chunk[j]].soft!, k * K));
        }
        const batch: Batch = {
          images: tf.tensor4d(data, [n, S, S, 3], 'float32'),
          labels: tf.tensor1d(labels, 'int32'),
          ...(softData ? { soft: tf.tensor2d(softData, [n, K], 'float32') } : {}),
        };
        yield batch;
      }
    } finally {
      await exec.close();
      if (newlyBad.length > 3) {
        this.warn(
          `fer-datasets: ${this.name}: skipped ${newlyBad.length} unreadable images this pass (see dataset.problems).`,
        );
      }
    }
  }
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T | null> {
  if (!signal) return p;
  if (signal.aborted) return Promise.resolve(null);
  return new Promise<T | null>((resolve, reject) => {
    const onAbort = () => resolve(null);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** One warning line per kind, with counts and the first few examples. */
export function summariseProblems(name: string, problems: DatasetProblem[]): string {
  const byKind = new Map<string, DatasetProblem[]>();
  for (const p of problems) byKind.set(p.kind, [...(byKind.get(p.kind) ?? []), p]);
  const lines = [`fer-datasets: ${name}: ${problems.length} problem(s) while listing (see dataset.problems):`];
  for (const [kind, ps] of byKind) {
    const ex = ps.slice(0, 3).map((p) => (p.row !== undefined ? `row ${p.row}: ` : '') + p.message);
    lines.push(`  ${kind} × ${ps.length}: ${ex.join('; ')}${ps.length > 3 ? '; ...' : ''}`);
  }
  return lines.join('\n');
}
