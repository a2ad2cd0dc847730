/**
 * Turning sample descriptions into pixels: the part of the pipeline that runs in worker threads (or in-process
 * with `workers: 0`). Depends on no tfjs.
 */
import { Rng } from 'fer-core';
import type { Emotion } from 'fer-core';
import { applyTransform, type Transform } from './augment';
import { decodeImage, rawToModelInput } from './decode';
import type { ChannelOrder, CropBox, PixelImage, ResizeMode } from './image';
import { renderSyntheticFace } from '../sources/synthetic-render';

/** What a worker needs to produce one sample's pixels (structured-clone friendly). */
export interface ItemSpec {
  path?: string;
  crop?: CropBox;
  synthetic?: { seed: number; emotion: Emotion };
  /** Seeds this sample's augmentation; independent of which worker or batch processes it. */
  seed: number;
}

/** Fixed per dataset: sent to each worker once. */
export interface PipelineConfig {
  imageSize: number;
  channelOrder: ChannelOrder;
  resize: ResizeMode;
  transform: Transform;
}

export interface JobResult {
  /** [n, size, size, 3] float32; rows of failed items are zero. */
  images: Float32Array;
  /** '' for a decoded item, else the reason it failed. */
  errors: string[];
}

/** Decode (or draw), resize, channel order, augment: one sample → float HWC pixels. Throws on unreadable files. */
export async function produceItem(item: ItemSpec, cfg: PipelineConfig): Promise<PixelImage> {
  let img: PixelImage;
  if (item.synthetic) {
    img = renderSyntheticFace(item.synthetic.emotion, item.synthetic.seed, cfg.imageSize);
    if (cfg.channelOrder === 'bgr') {
      for (let i = 0; i < img.data.length; i += 3) {
        const t = img.data[i];
        img.data[i] = img.data[i + 2];
        img.data[i + 2] = t;
      }
    }
  } else if (item.path) {
    const raw = await decodeImage(item.path);
    img = await rawToModelInput(raw, {
      crop: item.crop,
      size: cfg.imageSize,
      channelOrder: cfg.channelOrder,
      resize: cfg.resize,
    });
  } else {
    throw new Error('A sample needs a path or a synthetic spec.');
  }
  if (cfg.transform.ops.length) img = applyTransform(cfg.transform, img, new Rng(item.seed));
  return img;
}

/** Produces a whole batch; failures are reported per item, never thrown. */
export async function processJob(items: ItemSpec[], cfg: PipelineConfig): Promise<JobResult> {
  const px = cfg.imageSize * cfg.imageSize * 3;
  const images = new Float32Array(items.length * px);
  const errors = new Array<string>(items.length).fill('');
  await Promise.all(
    items.map(async (item, i) => {
      try {
        const img = await produceItem(item, cfg);
        images.set(img.data, i * px);
      } catch (e) {
        errors[i] = (e as Error).message || String(e);
      }
    }),
  );
  return { images, errors };
}
