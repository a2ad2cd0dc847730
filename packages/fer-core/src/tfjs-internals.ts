/**
 * Every use of TensorFlow.js internals in the fer packages goes through this module: the gradient tape, the live
 * tensor count, tensors from kernel outputs, a layer's `call`, the wasm backend's heap, and the global kernel and
 * gradient registries. Each was verified against tfjs {@link TFJS_VERIFIED_VERSION}; `checkTfjsVersion` (run by
 * fer-backend's `initBackend`) says when another version is installed, and `tfjs-internals.test.ts` is the contract
 * test that fails when tfjs changes the shape of anything used here.
 *
 * It lives in fer-core, not fer-backend: fer-core is the lowest package that touches tfjs (models, fer-parallel and
 * fer-backend all depend on it), while a fer-core → fer-backend dependency would pull fer-backend's backend peers
 * and Node-only selection code into every model user. fer-backend re-exports the version guard.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { FER_ERROR_CODES, FerError } from './errors';

/** The tfjs version whose internals this module was checked against (tfjs-core and tfjs-layers). */
export const TFJS_VERIFIED_VERSION = '4.22.0';

// ---- version guard ----

export type TfjsVersionCheck = 'warn' | 'error' | 'off';

let warned = false;

/**
 * Compares the installed tfjs-core and tfjs-layers with {@link TFJS_VERIFIED_VERSION}. On a mismatch `'warn'` (the
 * default) prints one warning per process, `'error'` throws `FerError` `FER_TFJS_VERSION`. Returns the mismatches.
 */
export function checkTfjsVersion(
  mode: TfjsVersionCheck = 'warn',
  installed: { core: string; layers: string } = { core: tf.version_core, layers: tfl.version_layers },
): string[] {
  const wrong = Object.entries(installed)
    .filter(([, v]) => v !== TFJS_VERIFIED_VERSION)
    .map(([pkg, v]) => `@tensorflow/tfjs-${pkg} ${v}`);
  if (wrong.length === 0 || mode === 'off') return wrong;
  const message =
    `fer was verified with tfjs ${TFJS_VERIFIED_VERSION}, but ${wrong.join(' and ')} is installed: ` +
    'its gradient tape, kernel registry or wasm heap may differ, and results may silently change.';
  const hint = `Install @tensorflow/tfjs-core@${TFJS_VERIFIED_VERSION} and @tensorflow/tfjs-layers@${TFJS_VERIFIED_VERSION}.`;
  if (mode === 'error') throw new FerError(FER_ERROR_CODES.tfjsVersion, message, { hint });
  if (!warned) {
    warned = true;
    console.warn(`warning: ${message} ${hint}`);
  }
  return wrong;
}

// ---- engine: tape, tensor count, tensors from kernel outputs ----

type EngineState = ReturnType<typeof tf.engine>['state'];
/** A node of the gradient tape: the kernel's inputs and outputs. */
export type TapeNode = NonNullable<EngineState['activeTape']>[number];

/** Whether a gradient tape is recording (inside `tf.grad`, `tf.variableGrads`, `optimizer.minimize`). */
export function isTapeOn(): boolean {
  return tf.engine().isTapeOn();
}

/** The nodes recorded so far on the active gradient tape (empty without one). */
export function activeTape(): readonly TapeNode[] {
  return tf.engine().state.activeTape ?? [];
}

/**
 * `tf.variableGrads` that frees memory during the backward pass instead of after it. tfjs keeps every tensor a kernel
 * saved for its gradient, and every intermediate gradient, until the whole backward pass ends, so a training step
 * peaks at about twice its activations. Here each tape node, once its input gradients are computed, disposes its
 * saved tensors and the gradients of its outputs (by then fully accumulated: every consumer of an output comes later
 * on the tape, so earlier in the backward walk), as PyTorch frees a node's buffers when its backward has run. Values
 * are unchanged: only the time of disposal moves. A gradient object handed on as an input's gradient is kept. Only
 * for a top-level tape (no enclosing gradient); nested, it is `tf.variableGrads` unchanged.
 */
export function variableGradsReleasing(
  f: () => tf.Scalar,
  varList?: tf.Variable[],
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  return tf.variableGrads(() => {
    const value = f();
    if (tf.engine().state.gradientDepth === 1) releaseDuringBackward(activeTape() as TapeNode[]);
    return value;
  }, varList);
}

type NodeGradient = (dys: tf.Tensor[]) => Record<string, () => tf.Tensor>;

function releaseDuringBackward(tape: TapeNode[]): void {
  // How often each tensor object was returned as some input's gradient: one returned twice (say as both inputs'
  // gradient) may still be another input's accumulated gradient, so it is left to the backward tidy.
  const returned = new Map<tf.Tensor, number>();
  // Inputs that already have a gradient: tfjs adds a new one into it (disposing the old sum, not the addend).
  const accumulating = new Set<number>();
  // Addends to dispose once tfjs has added them (it does so before it calls the next gradient function).
  let added: tf.Tensor[] = [];
  const flush = () => {
    for (const t of added) if ((returned.get(t) ?? 0) <= 1) t.dispose();
    added = [];
  };
  for (const node of tape) {
    const gradient = node.gradient as NodeGradient | undefined;
    if (!gradient) continue;
    // `function`: tfjs calls it on a pruned copy of the node whose `inputs` are the ones on the path to y.
    node.gradient = function (this: TapeNode, dys: tf.Tensor[]) {
      flush();
      const fns = gradient(dys);
      const inputs = this.inputs;
      const pending = new Set(Object.keys(inputs));
      const mine = new Set<tf.Tensor>();
      const saved = this.saved ?? [];
      const wrapped: Record<string, () => tf.Tensor> = {};
      for (const [name, fn] of Object.entries(fns)) {
        wrapped[name] = () => {
          flush();
          const dx = fn();
          mine.add(dx);
          returned.set(dx, (returned.get(dx) ?? 0) + 1);
          const x = inputs[name];
          if (x) {
            if (accumulating.has(x.id)) added.push(dx);
            else accumulating.add(x.id);
          }
          pending.delete(name);
          if (pending.size === 0) {
            for (const t of saved) if (!mine.has(t)) t.dispose(); // a gradient may be a saved tensor itself
            for (const dy of dys) if (dy && !mine.has(dy) && (returned.get(dy) ?? 0) <= 1) dy.dispose();
          }
          return dx;
        };
      }
      return wrapped;
    } as TapeNode['gradient'];
  }
}

/** Live tensors, readable before any backend is set (unlike `tf.memory()`). */
export function liveTensorCount(): number {
  return tf.engine().state.numTensors;
}

/** A `tf.Tensor` that owns a kernel output given as a bare `TensorInfo`. */
export function tensorFromInfo<T extends tf.Tensor = tf.Tensor>(info: tf.TensorInfo): T {
  return tf.engine().makeTensorFromTensorInfo(info) as T;
}

/** Runs a kernel by its tfjs-core name (use the exported constants, e.g. `tf.Conv2DBackpropFilter`). */
export function runKernel<A extends object>(kernel: string, inputs: tf.NamedTensorMap, attrs: A): tf.Tensor {
  return tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
}

/** Runs a kernel with several outputs (e.g. one a backend registers beyond tfjs' own); its outputs in order. */
export function runKernelOutputs<A extends object>(kernel: string, inputs: tf.NamedTensorMap, attrs: A): tf.Tensor[] {
  const out = tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap);
  return Array.isArray(out) ? out : [out as tf.Tensor];
}

/** Whether `kernel` is registered for `backendName` (default: the active backend). */
export function hasKernel(kernel: string, backendName: string = tf.getBackend()): boolean {
  return tf.getKernel(kernel, backendName) != null;
}

// ---- tfjs-layers: a layer's forward ----

export type LayerCall = (inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor | tf.Tensor[];

/**
 * Replaces `layer.call` (what `apply` runs, in training and inference) with `make(stock)`. The layer keeps its class
 * and config, so saving is unaffected; a loaded model needs the replacement again.
 */
export function replaceLayerCall(layer: tfl.layers.Layer, make: (stock: LayerCall) => LayerCall): void {
  const l = layer as unknown as { call: LayerCall };
  l.call = make(l.call.bind(layer));
}

// ---- wasm backend: its heap ----

/** The slice of tfjs-backend-wasm's `BackendWasm` that fer-backend's wasm kernels use (the class is not exported). */
export interface WasmBackendInternals {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  incRef(dataId: tf.DataId): void;
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number } };
  wasm: { HEAPU8: Uint8Array };
}

/** `backend` (default: the active one) as the wasm backend's internals, or null when it is not the wasm backend. */
export function wasmBackendInternals(backend: unknown = tf.backend()): WasmBackendInternals | null {
  const b = backend as unknown as Partial<WasmBackendInternals>;
  return typeof b.typedArrayFromHeap === 'function' && b.wasm?.HEAPU8 ? (b as WasmBackendInternals) : null;
}

// ---- global registries: kernels and gradients ----

/** Registers `config`, replacing the kernel registered under its name and backend (the registry is process-wide). */
export function replaceKernel(config: tf.KernelConfig): void {
  if (tf.getKernel(config.kernelName, config.backendName)) tf.unregisterKernel(config.kernelName, config.backendName);
  tf.registerKernel(config);
}

/**
 * Registers `config` as the gradient of its kernel for the whole process (every model, every backend), replacing
 * the one registered before; returns that one (undefined when there was none) so it can be restored.
 */
export function replaceGradient(config: tf.GradConfig): tf.GradConfig | undefined {
  const previous = tf.getGradient(config.kernelName);
  tf.registerGradient(config);
  return previous;
}

/** Puts `previous` back as the gradient of `kernelName` (or removes the entry when there was none). */
export function restoreGradient(kernelName: string, previous: tf.GradConfig | undefined): void {
  if (previous) tf.registerGradient(previous);
  else if (tf.getGradient(kernelName)) tf.unregisterGradient(kernelName);
}
