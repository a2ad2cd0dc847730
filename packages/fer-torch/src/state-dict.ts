import { StateDictError } from './errors';
import { PickledObject, PyDict, describeValue } from './pickle';
import { assertRawTensor, transposeRaw, type RawTensor } from './tensor';
import { isRawTensor, parseTorchFile, type ReadTorchOptions } from './torch-load';

/** A PyTorch-style state dict: parameter/buffer name → tensor, in insertion order. */
export type StateDict = Map<string, RawTensor>;

export interface ReadStateDictOptions extends ReadTorchOptions {
  /** Entry of a checkpoint dict that holds the weights, e.g. `'state_dict'`. Auto-detected when omitted. */
  key?: string;
  /** Prefix to strip from every key that has it, e.g. `'module.'` (DataParallel). */
  stripPrefix?: string;
}

/** Entries that commonly hold the weights in training checkpoints, tried in this order when `key` is not given. */
const WEIGHT_KEYS = ['state_dict', 'model_state_dict', 'model', 'net', 'module'];

/** At most 20 keys, for error messages. */
function keyList(m: Map<unknown, unknown>): string {
  const keys = [...m.keys()].map(String);
  return keys.length > 20 ? `${keys.slice(0, 20).join(', ')}, … (${keys.length} in all)` : keys.join(', ');
}

function isTensorDict(x: unknown): x is Map<unknown, unknown> {
  return x instanceof Map && [...x.values()].every(isRawTensor);
}

function moduleState(x: unknown): Map<unknown, unknown> | undefined {
  if (!(x instanceof PickledObject) || !(x.state instanceof Map)) return undefined;
  return x.state.has('_parameters') && x.state.has('_modules') ? x.state : undefined;
}

/**
 * The state dict of a whole pickled `nn.Module` (`torch.save(model)`, read with `unknownGlobals: 'inert'`), built as
 * `Module.state_dict()` does: parameters, then persistent buffers, then each child under `<name>.`.
 */
export function moduleStateDict(module: unknown, prefix = '', out: StateDict = new Map(), depth = 0): StateDict {
  const st = moduleState(module);
  if (!st) throw new StateDictError(`expected a pickled nn.Module, got ${describeValue(module)}.`);
  if (depth > 1000) throw new StateDictError('module nesting deeper than 1000 levels; the file is corrupt or crafted.');
  const nonPersistent = st.get('_non_persistent_buffers_set');
  const skip = nonPersistent instanceof Set ? nonPersistent : new Set();
  for (const field of ['_parameters', '_buffers']) {
    const d = st.get(field);
    if (!(d instanceof Map)) continue;
    for (const [name, t] of d) {
      if (t === null || (field === '_buffers' && skip.has(name))) continue;
      if (!isRawTensor(t))
        throw new StateDictError(`${prefix}${String(name)} in ${field} is ${describeValue(t)}, not a tensor.`);
      out.set(`${prefix}${String(name)}`, t);
    }
  }
  const children = st.get('_modules');
  if (children instanceof Map) {
    for (const [name, child] of children)
      if (child !== null) moduleStateDict(child, `${prefix}${String(name)}.`, out, depth + 1);
  }
  return out;
}

/**
 * Picks the state dict out of an unpickled checkpoint: the object itself when it maps names to tensors, else
 * `obj[key]`, else the first of `state_dict`, `model_state_dict`, `model`, `net`, `module` that does.
 */
export function extractStateDict(obj: unknown, opts: { key?: string; source?: string } = {}): StateDict {
  const src = opts.source ?? 'checkpoint';
  let sd: unknown = obj;
  if (opts.key !== undefined) {
    if (!(obj instanceof Map) || !obj.has(opts.key)) {
      const keys = obj instanceof Map ? keyList(obj) : describeValue(obj);
      throw new StateDictError(
        `${src}: expected a dict with the entry '${opts.key}', but the file holds ${obj instanceof Map ? `the keys ${keys}` : keys}. Pass one of those as { key }.`,
      );
    }
    sd = obj.get(opts.key);
  } else if (!isTensorDict(obj) && obj instanceof Map) {
    const found = WEIGHT_KEYS.find((k) => isTensorDict(obj.get(k)) || moduleState(obj.get(k)));
    if (found === undefined) {
      throw new StateDictError(
        `${src}: expected a state dict (names → tensors), but the file holds a dict with the keys ` +
          `${keyList(obj)}. Pass the entry that holds the weights as { key }.`,
      );
    }
    sd = obj.get(found);
  }
  if (moduleState(sd)) return moduleStateDict(sd);
  if (!(sd instanceof Map))
    throw new StateDictError(`${src}: expected a state dict (names → tensors), got ${describeValue(sd)}.`);
  const out: StateDict = new Map();
  for (const [k, v] of sd) {
    if (typeof k !== 'string') throw new StateDictError(`${src}: state dict key ${describeValue(k)} is not a string.`);
    if (!isRawTensor(v))
      throw new StateDictError(`${src}: state dict entry '${k}' is ${describeValue(v)}, not a tensor.`);
    out.set(k, v);
  }
  return out;
}

/**
 * Reads the weights of a checkpoint — torch.save zip, legacy torch.save or safetensors, sniffed from the bytes —
 * as `Map<name, RawTensor>` in file order. Tensors own their bytes; nothing in the file is executed.
 */
export async function parseStateDict(bytes: Uint8Array, opts: ReadStateDictOptions = {}): Promise<StateDict> {
  const obj = await parseTorchFile(bytes, opts);
  const sd = extractStateDict(obj, { key: opts.key, source: opts.source ?? 'buffer' });
  return opts.stripPrefix ? stripPrefix(sd, opts.stripPrefix) : sd;
}

/** The `_metadata` (module path → `{ version }`) that `state_dict()` attaches, if the checkpoint kept it. */
export function stateDictMetadata(obj: unknown, key?: string): Map<string, Map<string, unknown>> | undefined {
  const sd = key !== undefined && obj instanceof Map ? obj.get(key) : obj;
  const md = sd instanceof PyDict ? sd.attributes.get('_metadata') : undefined;
  return md instanceof Map ? (md as Map<string, Map<string, unknown>>) : undefined;
}

/** Removes `prefix` from every key that starts with it (like `consume_prefix_in_state_dict_if_present`). */
export function stripPrefix(sd: StateDict, prefix = 'module.'): StateDict {
  return renameKeys(sd, (k) => (k.startsWith(prefix) ? k.slice(prefix.length) : k));
}

/** Prepends `prefix` to every key, e.g. `'module.'` before loading into a DataParallel model. */
export function addPrefix(sd: StateDict, prefix: string): StateDict {
  return renameKeys(sd, (k) => prefix + k);
}

export type KeyFilter = ((key: string) => boolean) | RegExp | readonly string[];

function matcher(f: KeyFilter): (key: string) => boolean {
  if (typeof f === 'function') return f;
  if (f instanceof RegExp) return (k) => new RegExp(f.source, f.flags.replace('g', '')).test(k);
  const set = new Set(f);
  return (k) => set.has(k);
}

/** Keeps the keys the filter accepts (a predicate, a RegExp, or a list of exact names). */
export function selectKeys(sd: StateDict, filter: KeyFilter): StateDict {
  const m = matcher(filter);
  return new Map([...sd].filter(([k]) => m(k)));
}

/** Drops the keys the filter accepts, e.g. MA-Net's 12666-way heads: `dropKeys(sd, /^fc_[12]\./)`. */
export function dropKeys(sd: StateDict, filter: KeyFilter): StateDict {
  const m = matcher(filter);
  return new Map([...sd].filter(([k]) => !m(k)));
}

/**
 * Renames keys with a mapping (unlisted keys keep their name) or a function (`null` drops the key). Throws when two
 * keys would collide.
 */
export function renameKeys(
  sd: StateDict,
  mapping: ((key: string) => string | null) | Readonly<Record<string, string>> | ReadonlyMap<string, string>,
): StateDict {
  const fn =
    typeof mapping === 'function'
      ? mapping
      : mapping instanceof Map
        ? (k: string) => mapping.get(k) ?? k
        : (k: string) =>
            Object.prototype.hasOwnProperty.call(mapping, k) ? (mapping as Record<string, string>)[k] : k;
  const out: StateDict = new Map();
  const from = new Map<string, string>();
  for (const [k, v] of sd) {
    const nk = fn(k);
    if (nk === null) continue;
    if (out.has(nk))
      throw new StateDictError(
        `Renaming maps both '${from.get(nk)}' and '${k}' to '${nk}'; make the mapping one-to-one.`,
      );
    out.set(nk, v);
    from.set(nk, k);
  }
  return out;
}

/** Conv kernel OIHW `[out, in, kH, kW]` (PyTorch) → HWIO `[kH, kW, in, out]` (tfjs): `transpose([2, 3, 1, 0])`. */
export function oihwToHwio(t: RawTensor): RawTensor {
  if (t.shape.length !== 4)
    throw new StateDictError(`oihwToHwio: expected a 4-D conv kernel [out, in, kH, kW], got [${t.shape.join(', ')}].`);
  return transposeRaw(t, [2, 3, 1, 0]);
}

/** HWIO `[kH, kW, in, out]` (tfjs) → OIHW `[out, in, kH, kW]` (PyTorch): `transpose([3, 2, 0, 1])`. */
export function hwioToOihw(t: RawTensor): RawTensor {
  if (t.shape.length !== 4)
    throw new StateDictError(`hwioToOihw: expected a 4-D conv kernel [kH, kW, in, out], got [${t.shape.join(', ')}].`);
  return transposeRaw(t, [3, 2, 0, 1]);
}

/** Linear weight `[out, in]` (PyTorch) → dense kernel `[in, out]` (tfjs). */
export function linearToTfjs(t: RawTensor): RawTensor {
  if (t.shape.length !== 2)
    throw new StateDictError(`linearToTfjs: expected a 2-D weight [out, in], got [${t.shape.join(', ')}].`);
  return transposeRaw(t, [1, 0]);
}

/** Dense kernel `[in, out]` (tfjs) → linear weight `[out, in]` (PyTorch). */
export function linearToTorch(t: RawTensor): RawTensor {
  if (t.shape.length !== 2)
    throw new StateDictError(`linearToTorch: expected a 2-D kernel [in, out], got [${t.shape.join(', ')}].`);
  return transposeRaw(t, [1, 0]);
}

export interface ShapeMismatch {
  key: string;
  expected: number[];
  actual: number[];
}

/** What `load_state_dict` would say: keys the model needs but the file lacks, extra keys, and wrong shapes. */
export interface LoadReport {
  strict: boolean;
  /** Keys the model expects that the state dict lacks. */
  missing: string[];
  /** Keys in the state dict the model does not have. */
  unexpected: string[];
  shapeMismatches: ShapeMismatch[];
  /** Keys present on both sides with equal shapes. */
  matched: string[];
  /** False on any shape mismatch, and (when strict) on any missing or unexpected key, as in PyTorch. */
  ok: boolean;
  /** A PyTorch-style summary, empty when there is nothing to report. */
  message: string;
}

/**
 * Compares a state dict against what a model expects (`name → shape`, or another state dict). Shape mismatches
 * always fail (PyTorch raises on them even with `strict=False`); missing/unexpected keys fail only when `strict`.
 * Call `assertLoadable(report)` to throw a `StateDictError` with the summary.
 */
export function loadReport(
  expected: ReadonlyMap<string, readonly number[] | RawTensor> | Readonly<Record<string, readonly number[]>>,
  actual: ReadonlyMap<string, RawTensor>,
  opts: { strict?: boolean } = {},
): LoadReport {
  const strict = opts.strict ?? true;
  const exp = new Map<string, readonly number[]>();
  const entries = expected instanceof Map ? [...expected] : Object.entries(expected);
  for (const [k, v] of entries) exp.set(k, Array.isArray(v) ? (v as number[]) : (v as RawTensor).shape);
  const missing: string[] = [];
  const matched: string[] = [];
  const shapeMismatches: ShapeMismatch[] = [];
  for (const [k, shape] of exp) {
    const t = actual.get(k);
    if (!t) missing.push(k);
    else if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      shapeMismatches.push({ key: k, expected: [...shape], actual: [...t.shape] });
    else matched.push(k);
  }
  const unexpected = [...actual.keys()].filter((k) => !exp.has(k));
  const ok = shapeMismatches.length === 0 && (!strict || (missing.length === 0 && unexpected.length === 0));
  const lines: string[] = [];
  if (strict && missing.length) lines.push(`Missing key(s) in state_dict: ${missing.map((k) => `"${k}"`).join(', ')}.`);
  if (strict && unexpected.length)
    lines.push(`Unexpected key(s) in state_dict: ${unexpected.map((k) => `"${k}"`).join(', ')}.`);
  for (const m of shapeMismatches) {
    lines.push(
      `size mismatch for ${m.key}: copying a param with shape [${m.actual.join(', ')}] from checkpoint, the shape in current model is [${m.expected.join(', ')}].`,
    );
  }
  const message = lines.length ? `Error(s) in loading state_dict:\n\t${lines.join('\n\t')}` : '';
  return { strict, missing, unexpected, shapeMismatches, matched, ok, message };
}

/** Throws a `StateDictError` carrying the report's summary when `report.ok` is false. */
export function assertLoadable(report: LoadReport): void {
  if (!report.ok) {
    throw new StateDictError(
      `${report.message}\nFix the key names (stripPrefix, renameKeys, dropKeys) or pass { strict: false } to ignore missing and unexpected keys.`,
    );
  }
}

/** Validates every entry of a state dict (bytes match dtype and shape). */
export function assertStateDict(sd: ReadonlyMap<string, RawTensor>, what = 'state dict'): void {
  for (const [k, t] of sd) assertRawTensor(t, `${what} entry '${k}'`);
}
