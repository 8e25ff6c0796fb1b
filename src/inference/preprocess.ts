import sharp from 'sharp';
import { Errors, type KennelError } from '../core/index.js';

/**
 * How pixels become a model input. Stored with every backbone and every exported model, so
 * training, offline prediction and serving all feed a model exactly what it was trained on.
 */
export interface PreprocessSpec {
  /** square model input size in pixels */
  size: number;
  /** images are resized so the shorter side is size / cropFraction, then centre-cropped */
  cropFraction: number;
  layout: 'NCHW' | 'NHWC';
  /** value = (pixel * scale - mean[c]) / std[c] */
  scale: number;
  mean: [number, number, number];
  std: [number, number, number];
}

export const NORMALIZATIONS = {
  imagenet: { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  tf127: { scale: 1, mean: [127, 127, 127], std: [128, 128, 128] },
} as const satisfies Record<string, Pick<PreprocessSpec, 'scale' | 'mean' | 'std'>>;

/** A random-resized-crop augmentation view: fractions of the (EXIF-rotated) image. */
export interface CropView {
  left: number;
  top: number;
  width: number;
  height: number;
  flip: boolean;
}

/** An image: its encoded bytes (JPEG, PNG, WebP, GIF, TIFF, AVIF), or the path of its file. */
export type ImageInput = Buffer | string;

/** Images above this are refused before decoding (a decompression-bomb guard). */
export const MAX_INPUT_PIXELS = 100_000_000;

/**
 * Decodes an image (any format sharp reads; EXIF rotation applied; CMYK, greyscale, 16-bit and
 * alpha normalised to 8-bit sRGB) to `size`x`size` RGB bytes, HWC order.
 */
export async function decodeRgb(input: ImageInput, spec: PreprocessSpec, view?: CropView): Promise<Buffer> {
  const s = spec.size;
  let img = sharp(input, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' }).rotate();
  if (view) {
    const meta = await sharp(input, { limitInputPixels: MAX_INPUT_PIXELS }).metadata();
    const swap = (meta.orientation ?? 1) >= 5;
    const w = (swap ? meta.height : meta.width) ?? s;
    const h = (swap ? meta.width : meta.height) ?? s;
    const left = Math.min(w - 1, Math.floor(view.left * w));
    const top = Math.min(h - 1, Math.floor(view.top * h));
    img = img
      .extract({ left, top, width: Math.max(1, Math.min(w - left, Math.round(view.width * w))), height: Math.max(1, Math.min(h - top, Math.round(view.height * h))) })
      .resize(s, s, { fit: 'fill' });
    if (view.flip) img = img.flop();
  } else {
    const r = Math.round(s / spec.cropFraction);
    const off = Math.floor((r - s) / 2);
    img = img.resize(r, r, { fit: 'cover' }).extract({ left: off, top: off, width: s, height: s });
  }
  return img.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer();
}

/** decodeRgb for a client's image: one that does not decode is the client's error (BadImage, a 400). */
export async function decodeClientImage(input: ImageInput, spec: PreprocessSpec): Promise<Buffer> {
  try {
    return await decodeRgb(input, spec);
  } catch (e) {
    throw clientImageError(e as Error);
  }
}

/** The client's error (BadImage) for sharp's refusal of their image, here or in a decode worker. */
export function clientImageError(e: Error): KennelError {
  return Errors.BadImage(`The image could not be decoded: ${decodeFailure(e.message)}.`, 'Send a JPEG, PNG, WebP, GIF, TIFF or AVIF image.');
}

/**
 * Why sharp refused an image, in words that do not depend on libvips: its decoders' detail shares
 * one error buffer across threads and is sometimes lost, so the same file must not read two ways.
 */
function decodeFailure(message: string): string {
  if (/unsupported image format/i.test(message)) return 'its format is not one Kennel reads';
  if (/pixel limit/i.test(message)) return `it is over the pixel limit (${MAX_INPUT_PIXELS / 1e6} megapixels)`;
  return 'it is corrupt or truncated';
}

/** Writes normalised floats for one RGB HWC image into `out` at image slot `index`. */
export function normalizeInto(rgb: Uint8Array, spec: PreprocessSpec, out: Float32Array, index: number): void {
  const n = spec.size * spec.size;
  if (rgb.length !== n * 3) throw new Error(`expected ${n * 3} RGB bytes, got ${rgb.length}`);
  const base = index * n * 3;
  const a = spec.std.map((sd) => spec.scale / sd);
  const b = spec.mean.map((m, c) => -m / spec.std[c]!);
  if (spec.layout === 'NCHW') {
    const [a0, a1, a2] = a as [number, number, number];
    const [b0, b1, b2] = b as [number, number, number];
    for (let i = 0, p = 0; i < n; i++, p += 3) {
      out[base + i] = rgb[p]! * a0 + b0;
      out[base + n + i] = rgb[p + 1]! * a1 + b1;
      out[base + 2 * n + i] = rgb[p + 2]! * a2 + b2;
    }
  } else {
    for (let p = 0; p < n * 3; p++) out[base + p] = rgb[p]! * a[p % 3]! + b[p % 3]!;
  }
}

/** Values in one image's input tensor. */
export const inputSize = (spec: PreprocessSpec): number => 3 * spec.size * spec.size;

export function inputShape(spec: PreprocessSpec, batch: number): number[] {
  return spec.layout === 'NCHW' ? [batch, 3, spec.size, spec.size] : [batch, spec.size, spec.size, 3];
}

/** One image at a time per libvips call: parallelism comes from decoding several images at once. */
export function tuneSharp(): void {
  sharp.concurrency(1);
  sharp.cache(false);
}
