/**
 * What the page exposes as `window.ferDemo` (DOM-free, so Node scripts and tests can type their calls into it).
 */
import type { BackendInfo } from 'fer-backend';
import type { NamedBytes, EsrFaceResult } from './model';
import type { StepResult, StepSpec } from './train-step';

export interface FaceBoxJson {
  left: number;
  top: number;
  width: number;
  height: number;
  score: number;
}

export interface FaceAnalysis extends EsrFaceResult {
  box: FaceBoxJson | null;
}

export interface FerDemoApi {
  /** Resolves once the page is usable: null, or the error that stopped initialisation (also shown in the page). */
  ready: Promise<string | null>;
  backend(): BackendInfo | null;
  modelSource(): string;
  /** How many analyses have completed (scripts wait on it) and the latest one's faces. */
  analyses(): number;
  lastFaces(): FaceAnalysis[];
  status(): { text: string; error: boolean };
  loadModelUrl(url: string): Promise<void>;
  loadTorchFiles(files: readonly NamedBytes[]): Promise<string>;
  analyzeBlob(blob: Blob, detect?: boolean): Promise<FaceAnalysis[]>;
  analyzeUrl(url: string, detect?: boolean): Promise<FaceAnalysis[]>;
  /** The model alone on prepared faces ([n, S, S, 3] in its colour order), bypassing decoding and detection. */
  classifyPixels(px: Float32Array, n: number): Promise<EsrFaceResult[]>;
  /** Images per second for the whole ensemble on a batch of faces. */
  benchmark(batch?: number, iterations?: number): Promise<{ backend: string; imagesPerSecond: number }>;
  trainingStep(spec?: StepSpec): Promise<StepResult>;
  memory(): number;
}
