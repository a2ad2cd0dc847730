import sharp from 'sharp';
import { writeFileAtomic } from 'fer-core/node';

/** Writes `<base>.svg` and `<base>.png` (rendered by sharp/librsvg) atomically. Returns both paths. */
export async function writeSvgAndPng(base: string, svg: string): Promise<{ svg: string; png: string }> {
  const png = await sharp(Buffer.from(svg)).png().toBuffer();
  await writeFileAtomic(`${base}.svg`, svg);
  await writeFileAtomic(`${base}.png`, new Uint8Array(png));
  return { svg: `${base}.svg`, png: `${base}.png` };
}
