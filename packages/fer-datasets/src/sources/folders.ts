/** Class-per-folder datasets (FER2013 in the Kaggle layout, CK+48, JAFFE, RAF-DB's README layout, your own). */
import * as path from 'node:path';
import fg from 'fast-glob';
import { EMOTIONS, EMOTION_ALIASES, FerInputError, type Emotion, type LabelSet } from 'fer-core';
import type { DatasetProblem, ImageDataset, SampleRecord } from '../pipeline/dataset';
import { buildDataset, requireDir, type SourceDefaults, type SourceOptions } from './common';

export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'tif', 'tiff', 'bmp', 'webp', 'gif'];

export interface ClassFoldersOptions extends SourceOptions {
  /** Folder holding one sub-folder per class. */
  root: string;
  /** Folder name → emotion; default `EMOTION_ALIASES` on the lower-cased name. */
  folderNames?: Readonly<Record<string, Emotion>>;
  /** File extensions to pick up (case-insensitive). */
  extensions?: string[];
}

/** Lists `{ path, emotion }` for every image in `<root>/<class>/**`, reporting unknown and empty folders. */
export async function listClassFolders(
  root: string,
  folderNames: Readonly<Record<string, Emotion>> = EMOTION_ALIASES,
  extensions: string[] = IMAGE_EXTENSIONS,
): Promise<{ records: SampleRecord[]; problems: DatasetProblem[]; found: Emotion[] }> {
  requireDir(
    root,
    'Dataset root',
    'Expected a folder with one sub-folder per class (e.g. happy/, sad/); check --data.',
  );
  const dirs = (await fg('*', { cwd: root, onlyDirectories: true })).sort();
  const problems: DatasetProblem[] = [];
  const records: SampleRecord[] = [];
  const found = new Set<Emotion>();
  const pattern = `**/*.{${extensions.flatMap((e) => [e.toLowerCase(), e.toUpperCase()]).join(',')}}`;
  for (const d of dirs) {
    const emotion = folderNames[d.toLowerCase()] ?? folderNames[d];
    if (!emotion) {
      problems.push({
        kind: 'unknown-label',
        path: path.join(root, d),
        message: `folder '${d}' is not a known emotion name; skipped`,
      });
      continue;
    }
    const files = (await fg(pattern, { cwd: path.join(root, d), onlyFiles: true })).sort();
    if (!files.length) {
      problems.push({ kind: 'empty-class', path: path.join(root, d), message: `class folder '${d}' holds no images` });
      continue;
    }
    found.add(emotion);
    for (const f of files) records.push({ path: path.join(root, d, f), emotion });
  }
  if (!records.length) {
    const names = [...new Set(Object.keys(folderNames))].join(', ');
    throw new FerInputError(
      `No images in class folders under ${root} (sub-folders: ${dirs.join(', ') || 'none'}).`,
      `Expected sub-folders named after emotions (${names}) holding ${extensions.join('/')} files.`,
    );
  }
  return { records, problems, found: EMOTIONS.filter((e) => found.has(e)) };
}

/**
 * A class-per-folder dataset. Labels default to the emotions found, in AffectNet order; pass `labels` to score
 * a model with another order (e.g. an 8-class AffectNet model on 7-class FER2013). Defaults: RGB, OpenCV
 * bilinear, no normalisation, `augment: true` = ESR augmentation.
 */
export async function classFolders(opts: ClassFoldersOptions): Promise<ImageDataset> {
  const { records, problems, found } = await listClassFolders(opts.root, opts.folderNames, opts.extensions);
  const defaults: SourceDefaults = {
    labels: found as LabelSet,
    channelOrder: 'rgb',
    resize: 'bilinear',
    normalize: 'none',
    train: 'esr',
  };
  return buildDataset(`folders/${path.basename(path.resolve(opts.root))}`, records, problems, defaults, opts, {
    listed: records.length,
  });
}
