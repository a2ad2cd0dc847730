/**
 * The demo page: backend selection, model loading (URL or dropped PyTorch checkpoint), face detection, the
 * ensemble's label, each branch's vote, probabilities and CBAM spatial attention. `window.ferDemo` exposes the same
 * functions to scripts (the headless-Chromium tests drive the page through it).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgpu';
import '@tensorflow/tfjs-backend-webgl';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { initBackend, type BackendInfo, type BackendName } from 'fer-backend';
import { cropRaw, preprocessRaw, type RawImage } from 'fer-datasets/image';
import type { EsrEnsemble, FoldedEsr } from 'fer-models-esr';
import { detectFaces, loadDetector, type FaceBox } from './faces';
import { drawAttention } from './heatmap';
import type { FaceAnalysis, FerDemoApi } from './api';
import { classifyFaces, esrFromTorchFiles, loadEsrFromUrl, type NamedBytes } from './model';
import { decodeBlob, drawableToRaw, rawToCanvas } from './pixels';
import { runTrainingStep, type StepSpec } from './train-step';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

let model: EsrEnsemble | null = null;
/** `model.fold()`: what classification runs (owned here, disposed with the model). */
let inference: FoldedEsr | null = null;
let modelSource = '';
let backend: BackendInfo | null = null;
/** The latest analysis (from the UI or the API) and how many have completed: scripts wait on the count. */
let lastFaces: FaceAnalysis[] = [];
let analyses = 0;

function status(text: string, error = false): void {
  const el = $('status');
  el.textContent = text;
  el.className = error ? 'error' : '';
}

function setModel(next: EsrEnsemble, source: string): void {
  // Inference runs folded (batch norms in the convs); a model without usable statistics is refused here, one line.
  let folded: FoldedEsr;
  try {
    folded = next.fold();
  } catch (e) {
    next.dispose();
    throw e;
  }
  inference?.dispose();
  model?.dispose();
  model = next;
  inference = folded;
  modelSource = source;
  const c = next.config;
  $('model-info').textContent =
    `model: ${source} (ESR ${c.variant}, ${next.numBranches} branches, ${c.inputSize} px, ${c.colorOrder}, labels ${c.labels.join('/')})`;
}

/** Backend (the project's selection: webgpu → webgl → wasm → cpu) and the face detector. */
async function init(): Promise<void> {
  const params = new URLSearchParams(location.search);
  setWasmPaths(new URL('wasm/', location.href).href);
  // WebGL shaders read tensor shapes from uniforms: one compiled program serves every batch size (SwiftShader, the
  // CPU WebGL of GPU-less machines, compiles slowly).
  tf.env().set('WEBGL_USE_SHAPES_UNIFORMS', true);
  const forced = params.get('backend');
  backend = await initBackend({ backend: (forced as BackendName | null) ?? 'auto', quiet: true });
  const skipped = backend.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  $('backend-info').textContent = `backend: ${backend.name}${skipped ? ` (skipped ${skipped})` : ''}`;
  await loadDetector(new URL('face-api/', location.href).href);
  const url = params.get('model') ?? 'model';
  try {
    setModel(await loadEsrFromUrl(new URL(url, location.href).href), url);
    status('Ready: drop a photo, pick one, or use the webcam.');
  } catch (e) {
    status(`${(e as Error).message} Drop a PyTorch ESR checkpoint to start.`, true);
  }
}

function requireModel(): EsrEnsemble {
  if (!model)
    throw new Error('No model is loaded: serve one (pnpm demo writes runs/demo/model) or drop a .pt checkpoint.');
  return model;
}

function requireInference(): FoldedEsr {
  requireModel();
  return inference!;
}

/** Crops, resizes and orders channels with the steps `fer predict` (fer-datasets' `rawToModelInput`) uses. */
function prepare(raw: RawImage, box: FaceBox | null, size: number, bgr: boolean): { px: Float32Array; crop: RawImage } {
  const crop = box ? cropRaw(raw, { left: box.left, top: box.top, width: box.width, height: box.height }) : raw;
  return { px: preprocessRaw(crop, { size, channelOrder: bgr ? 'bgr' : 'rgb' }).data, crop };
}

/** Detects the faces of an 8-bit RGB image (unless `detect` is false) and classifies each; renders the largest. */
async function analyzeRaw(raw: RawImage, detect = true): Promise<FaceAnalysis[]> {
  const esr = requireModel();
  const S = esr.config.inputSize;
  const boxes: (FaceBox | null)[] = detect ? await detectFaces(raw) : [null];
  showPhoto(raw, boxes);
  if (boxes.length === 0) {
    status('No face found in this photo.');
    $('result').hidden = true;
    lastFaces = [];
    analyses++;
    return [];
  }
  const prepared = boxes.map((b) => prepare(raw, b, S, esr.config.colorOrder === 'bgr'));
  const px = new Float32Array(prepared.length * S * S * 3);
  prepared.forEach((p, i) => px.set(p.px, i * S * S * 3));
  const results = await classifyFaces(requireInference(), px, prepared.length);
  const faces = results.map((r, i) => ({ ...r, box: boxes[i] }));
  render(faces[0], prepared[0].crop);
  lastFaces = faces;
  analyses++;
  status(`${faces.length} face${faces.length > 1 ? 's' : ''}; showing the largest.`);
  return faces;
}

function showPhoto(raw: RawImage, boxes: (FaceBox | null)[]): void {
  const view = $<HTMLCanvasElement>('photo-view');
  view.width = raw.width;
  view.height = raw.height;
  const ctx = view.getContext('2d')!;
  ctx.drawImage(rawToCanvas(raw), 0, 0);
  ctx.strokeStyle = '#2a7ae2';
  ctx.lineWidth = Math.max(2, raw.width / 200);
  for (const b of boxes) if (b) ctx.strokeRect(b.left, b.top, b.width, b.height);
}

function render(face: FaceAnalysis, crop: RawImage): void {
  const esr = requireModel();
  const labels = esr.labels as readonly string[];
  $('result').hidden = false;
  $('emotion').textContent = face.emotion;
  $('face-info').textContent = face.box
    ? `face at [${face.box.left}, ${face.box.top}, ${face.box.width}×${face.box.height}], detector score ${face.box.score.toFixed(2)}`
    : 'whole image as one face';
  const table = $<HTMLTableElement>('probs');
  table.innerHTML = '';
  const head = table.insertRow();
  ['emotion', 'ensemble p', ...face.votes.map((_, k) => `branch ${k + 1}`)].forEach((t) => {
    const th = document.createElement('th');
    th.textContent = t;
    head.appendChild(th);
  });
  labels.forEach((l, c) => {
    const row = table.insertRow();
    if (l === face.emotion) row.className = 'top';
    row.insertCell().textContent = l;
    row.insertCell().textContent = face.probabilities[l].toFixed(3);
    face.branchProbabilities.forEach((p) => (row.insertCell().textContent = p[c].toFixed(3)));
  });
  const host = $('branches');
  host.innerHTML = '';
  const faceCanvas = rawToCanvas(crop);
  face.votes.forEach((vote, k) => {
    const div = document.createElement('div');
    div.className = 'branch';
    const canvas = document.createElement('canvas');
    canvas.dataset.branch = String(k + 1);
    const caption = document.createElement('div');
    const p = face.branchProbabilities[k][labels.indexOf(vote)];
    if (face.attention[k]) {
      const r = drawAttention(canvas, faceCanvas, face.attention[k]);
      caption.textContent = `branch ${k + 1}: ${vote} (${p.toFixed(2)}) · attention ${r.min.toFixed(3)}–${r.max.toFixed(3)}`;
    } else {
      drawAttention(canvas, faceCanvas, []);
      caption.textContent = `branch ${k + 1}: ${vote} (${p.toFixed(2)}) · no CBAM attention (original ESR)`;
    }
    div.append(canvas, caption);
    host.appendChild(div);
  });
}

async function analyzeBlob(blob: Blob, detect = true): Promise<FaceAnalysis[]> {
  return analyzeRaw(await decodeBlob(blob), detect);
}

async function loadTorchFiles(files: readonly NamedBytes[]): Promise<string> {
  status(`Converting ${files.length} PyTorch file${files.length > 1 ? 's' : ''}…`);
  const esr = await esrFromTorchFiles(files);
  setModel(esr, `PyTorch checkpoint (${files.map((f) => f.name).join(', ')})`);
  status('Checkpoint converted in the page: drop a photo.');
  return modelSource;
}

async function handleFiles(list: FileList | File[]): Promise<void> {
  const files = [...list];
  try {
    const torch = files.filter((f) => /\.(pt|pth)$/i.test(f.name));
    if (torch.length) {
      await loadTorchFiles(
        await Promise.all(torch.map(async (f) => ({ name: f.name, bytes: new Uint8Array(await f.arrayBuffer()) }))),
      );
    }
    const photo = files.find((f) => f.type.startsWith('image/'));
    if (photo) await analyzeBlob(photo);
  } catch (e) {
    status((e as Error).message, true);
  }
}

let stream: MediaStream | null = null;

async function startWebcam(): Promise<void> {
  const video = $<HTMLVideoElement>('video');
  stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
  video.srcObject = stream;
  video.hidden = false;
  $('capture').hidden = false;
  await video.play();
}

async function captureWebcam(): Promise<FaceAnalysis[]> {
  const video = $<HTMLVideoElement>('video');
  return analyzeRaw(drawableToRaw(video, video.videoWidth, video.videoHeight));
}

/** Images per second for the whole ensemble (forward, softmax, attention read back) on a batch of faces. */
async function benchmark(batch = 8, iterations = 5): Promise<{ backend: string; imagesPerSecond: number }> {
  const esr = requireModel();
  const S = esr.config.inputSize;
  const px = new Float32Array(batch * S * S * 3).map((_, i) => (i % 251) / 251);
  const folded = requireInference();
  await classifyFaces(folded, px, batch); // warm-up: shader compilation / wasm init
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) await classifyFaces(folded, px, batch);
  const s = (performance.now() - t0) / 1000;
  return { backend: tf.getBackend(), imagesPerSecond: (batch * iterations) / s };
}

function wireUi(): void {
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer?.files) void handleFiles(e.dataTransfer.files);
  });
  $<HTMLInputElement>('photo').addEventListener('change', (e) => {
    const f = (e.target as HTMLInputElement).files;
    if (f) void handleFiles(f);
  });
  $<HTMLInputElement>('torch').addEventListener('change', (e) => {
    const f = (e.target as HTMLInputElement).files;
    if (f) void handleFiles(f);
  });
  $('webcam').addEventListener('click', () =>
    startWebcam().catch((e) => status(`Webcam unavailable: ${(e as Error).message}`, true)),
  );
  $('capture').addEventListener('click', () => captureWebcam().catch((e) => status((e as Error).message, true)));
}

/** Resolves once the page is usable: null, or the error that stopped initialisation (also shown in the page). */
const ready: Promise<string | null> = (async () => {
  wireUi();
  await init();
  return null;
})().catch((e: unknown) => {
  const msg = `Could not start: ${(e as Error).message ?? e}`;
  status(msg, true);
  return msg;
});

declare global {
  interface Window {
    ferDemo: FerDemoApi;
  }
}

const api: FerDemoApi = {
  ready,
  backend: () => backend,
  modelSource: () => modelSource,
  analyses: () => analyses,
  lastFaces: () => lastFaces,
  status: () => ({ text: $('status').textContent ?? '', error: $('status').className === 'error' }),
  loadModelUrl: async (url: string) => setModel(await loadEsrFromUrl(url), url),
  loadTorchFiles,
  analyzeBlob,
  analyzeUrl: async (url: string, detect = true) => analyzeBlob(await (await fetch(url)).blob(), detect),
  /** The model alone on prepared faces ([n, S, S, 3] in its colour order), bypassing decoding and detection. */
  classifyPixels: (px: Float32Array, n: number) => classifyFaces(requireInference(), px, n),
  benchmark,
  trainingStep: (spec?: StepSpec) => runTrainingStep(spec),
  memory: () => tf.memory().numTensors,
};
window.ferDemo = api;
