/** Messages between the engine (main thread) and its workers. Internal. */
import type { TaskSpec, WorkerMemory } from './types';

/** A contiguous run of images in the shared batch buffer processed as one micro-batch. */
export interface Chunk {
  start: number;
  count: number;
  /** count / batch size. */
  weight: number;
}

export type Request =
  | { id: number; type: 'init'; task: TaskSpec; workerIndex: number; numWorkers: number }
  | {
      id: number;
      type: 'grads';
      images: Float32Array;
      labels: Int32Array;
      /** [h, w, c] of one image. */
      image: [number, number, number];
      chunks: Chunk[];
      state?: Float32Array;
      /** Shared buffer (one per worker, reused every step) the worker writes its gradient sum into. */
      out?: Float32Array;
    }
  | {
      id: number;
      type: 'infer';
      images: Float32Array;
      labels: Int32Array;
      image: [number, number, number];
      chunks: Chunk[];
      state?: Float32Array;
    }
  | { id: number; type: 'setWeights'; flat?: Float32Array; state?: Float32Array }
  | { id: number; type: 'getWeights' }
  | { id: number; type: 'memory' }
  | { id: number; type: 'dispose' };

/** A request before the handle numbers it. */
export type RequestBody = Request extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

export interface InitReply {
  names: string[];
  groups: string[];
  shapes: number[][];
  stateShapes: number[][];
  backend: string;
}

export interface GradsReply {
  loss: number;
  terms: Record<string, number>;
  counts: number[];
  flat: Float32Array;
  state: Float32Array | null;
  ms: number;
}

export interface InferReply {
  /** Image-major outputs of the worker's chunks, concatenated. */
  flat: Float32Array;
  ms: number;
}

export interface WeightsReply {
  flat: Float32Array;
  state: Float32Array;
}

export interface DisposeReply {
  /** Tensors still alive after the replica was disposed. */
  leaked: number;
}

export type ReplyBody = InitReply | GradsReply | InferReply | WeightsReply | WorkerMemory | DisposeReply | null;

export type Reply = { id: number; ok: true; body: ReplyBody } | { id: number; ok: false; error: RemoteError };

/** A worker's error as it crosses the thread boundary (fer errors keep their `code` and `hint`). */
export interface RemoteError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  hint?: string;
}
