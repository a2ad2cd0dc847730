import * as os from 'node:os';
import * as path from 'node:path';
import { promises as fs } from 'node:fs';
import sharp from 'sharp';
import { confusionMatrixSvg, lineChartSvg } from './svg';
import { writeSvgAndPng } from './render';

describe('SVG plots', () => {
  it('draws one path per series, legends escaped, gaps for missing points', () => {
    const svg = lineChartSvg(
      [
        { label: 'train <loss>', ys: [2, 1.5, 1.2] },
        { label: 'val', ys: [2.1, null, 1.4], dashed: true },
      ],
      { title: 'Loss', xLabel: 'epoch', yLabel: 'loss', markers: [{ x: 1, label: 'stage 2' }] },
    );
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('train &lt;loss&gt;');
    const paths = svg.match(/<path d="([^"]+)"/g)!;
    expect(paths).toHaveLength(2);
    // the gap restarts the pen: two 'M' commands in the second series
    expect((paths[1].match(/M/g) ?? []).length).toBe(2);
    expect(svg).toContain('stage 2');
  });

  it('renders the confusion matrix with every count and renders to a PNG of the SVG size', async () => {
    const svg = confusionMatrixSvg(
      [
        [5, 1],
        [0, 7],
      ],
      ['happy', 'sad'],
    );
    for (const n of ['>5<', '>1<', '>0<', '>7<', 'happy', 'sad']) expect(svg).toContain(n);
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'fer-plot-'));
    const out = await writeSvgAndPng(path.join(dir, 'cm'), svg);
    const meta = await sharp(out.png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBe(Number(/width="(\d+)"/.exec(svg)![1]));
    await fs.rm(dir, { recursive: true, force: true });
  });
});
