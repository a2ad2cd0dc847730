/**
 * `fer-datasets/image`: the browser-safe part of the pipeline (no Node built-ins, no sharp). A page decodes with
 * its own canvas and gets the same model input as `fer predict` from the crop, resize and channel steps here.
 */
export { preprocessRaw, cropRaw, resizeBilinear, rawToPixels, pixelsToRaw, swapRedBlue } from './pipeline/image';
export type { PixelImage, RawImage, CropBox, ChannelOrder, ResizeMode, LoadImageOptions } from './pipeline/image';
