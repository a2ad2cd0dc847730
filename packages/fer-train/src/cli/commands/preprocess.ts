import { preprocessAffectNet } from 'fer-datasets';
import { FerInputError, parseChoice } from 'fer-core';
import type { Output } from '../output';

export interface PreprocessCommandOptions {
  root: string;
  out: string;
  set: string;
  imageSize: number;
  faithfulBox?: boolean;
}

/** `fer preprocess affectnet`: crops and resizes AffectNet's raw images into the reference's folder layout. */
export async function runPreprocessAffectNet(o: PreprocessCommandOptions, out: Output): Promise<void> {
  const set = parseChoice('AffectNet set', o.set, ['training', 'validation', 'automatic'] as const);
  if (!Number.isInteger(o.imageSize) || o.imageSize <= 0)
    throw new FerInputError(`Expected --image-size to be a positive integer, but got ${o.imageSize}.`);
  const bar = out.progress(`affectnet ${set}`, 1);
  const report = await preprocessAffectNet({
    root: o.root,
    out: o.out,
    set,
    imageSize: o.imageSize,
    box: o.faithfulBox ? 'reference' : 'correct',
    onProgress: (done, total) => {
      bar.update(done, { total });
    },
  } as Parameters<typeof preprocessAffectNet>[0]);
  bar.done();
  out.result(
    `AffectNet ${set}: ${report.written} of ${report.rows} rows written to ${report.outDir}; ${report.errors.length} error(s)` +
      (report.errors.length ? ` (first: row ${report.errors[0].row} ${report.errors[0].reason})` : ''),
    { type: 'preprocess', ...report, errors: report.errors.slice(0, 50) },
  );
}
