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
  // The bar starts once the number of valid rows is known (its total).
  let bar: ReturnType<Output['progress']> | undefined;
  const report = await preprocessAffectNet({
    root: o.root,
    out: o.out,
    set,
    imageSize: o.imageSize,
    box: o.faithfulBox ? 'reference' : 'correct',
    onProgress: (done, total) => {
      bar ??= out.progress(`affectnet ${set}`, total);
      bar.update(done);
    },
  } as Parameters<typeof preprocessAffectNet>[0]);
  bar?.done();
  const firstCode = report.errors.find((e) => e.kind === 'code');
  const summary =
    `AffectNet ${set}: ${report.written} of ${report.rows} rows written to ${report.outDir}; ${report.errors.length} error(s)` +
    (report.invalidCodes
      ? `, ${report.invalidCodes} with an invalid expression code (first: ${firstCode!.reason})`
      : '') +
    (report.errors.length ? ` (first: row ${report.errors[0].row} ${report.errors[0].reason})` : '');
  if (report.written === 0)
    throw new FerInputError(`${summary}.`, 'Nothing was written: check the annotation file and --root.');
  out.result(summary, { type: 'preprocess', ...report, errors: report.errors.slice(0, 50) });
}
