import { Errors } from '../core/index.js';
import { inputSize, normalizeInto, type PreprocessSpec } from '../inference/index.js';
import { decodeBase64Image } from '../serving/index.js';

/**
 * The Open Inference Protocol's (KServe V2) tensors, turned into what a replica takes: an encoded
 * image, or one image's preprocessed model input. Pure functions, so the request shapes of the
 * specification are tested without a daemon.
 */

/** One input or output tensor of an inference request or response. */
export interface OipTensor {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: Record<string, unknown>;
  data: unknown;
}

export interface OipInferRequest {
  id?: string;
  parameters?: Record<string, unknown>;
  inputs: OipTensor[];
  outputs?: Array<{ name: string; parameters?: Record<string, unknown> }>;
}

/** What a replica runs for one image of the batch: the encoded image, or its model input as float32 bytes. */
export interface OipItem {
  bytes: Uint8Array;
  tensor: boolean;
}

/** The image tensor's datatypes: encoded images, 8-bit RGB pixels, or the model's own (normalised) input. */
export const INPUT_DATATYPES = ['BYTES', 'UINT8', 'FP32'] as const;

/** Images one request may carry (a batch is run by the replica's dynamic batcher, like as many requests). */
export const MAX_IMAGES_PER_REQUEST = 64;

/** The shape of the model's input for `n` images (-1: any number), in the model's layout. */
export function modelInputShape(spec: PreprocessSpec, n = -1): number[] {
  return spec.layout === 'NCHW' ? [n, 3, spec.size, spec.size] : [n, spec.size, spec.size, 3];
}

/**
 * The images of an inference request, one item each. The one input tensor is BYTES (each element
 * a base64-encoded JPEG, PNG, WebP, GIF, TIFF or AVIF; shape [N] or [N, 1]), UINT8 (RGB pixels
 * 0-255, shape [N, S, S, 3] or [N, 3, S, S], normalised here as the model card says) or FP32
 * (the model's input values, already normalised, either layout), where S is the model's input
 * size. `data` is flat or nested in row-major order, as the protocol allows. Bad input is a 400.
 */
export function inferItems(req: OipInferRequest, spec: PreprocessSpec, maxImageBytes: number): OipItem[] {
  if (req.inputs.length !== 1) {
    throw Errors.InvalidRequest(`The request has ${req.inputs.length} input tensors, and the model takes one (the images).`, 'Send one input: BYTES (base64-encoded images), UINT8 pixels or FP32 model input; see GET /v2/models/NAME.');
  }
  const input = req.inputs[0]!;
  const { shape, datatype } = input;
  if (shape.length === 0) throw Errors.InvalidRequest(`Input "${input.name}" has an empty shape.`, 'The first dimension is the number of images.');
  const n = shape[0]!;
  if (n < 1 || n > MAX_IMAGES_PER_REQUEST) throw Errors.InvalidRequest(`Input "${input.name}" holds ${n} images; a request takes 1 to ${MAX_IMAGES_PER_REQUEST}.`, 'Split the batch into several requests.');
  const expected = shape.reduce((a, b) => a * b, 1);
  switch (datatype) {
    case 'BYTES': {
      if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1))) throw Errors.InvalidRequest(`A BYTES input has shape [N] or [N, 1], not [${shape.join(', ')}].`, 'Send one base64-encoded image per element.');
      const values = flatten(input, expected);
      return values.map((v, i) => {
        if (typeof v !== 'string') throw Errors.InvalidRequest(`Element ${i} of input "${input.name}" is not a string.`, 'BYTES elements are base64-encoded image files.');
        return { bytes: decodeBase64Image(v, maxImageBytes), tensor: false };
      });
    }
    case 'UINT8':
    case 'FP32': {
      const layout = layoutOf(shape, spec, input.name);
      const values = flatten(input, expected);
      const per = inputSize(spec);
      const items: OipItem[] = [];
      for (let i = 0; i < n; i++) {
        const image = values.slice(i * per, (i + 1) * per);
        items.push({ bytes: new Uint8Array(datatype === 'UINT8' ? fromPixels(image, layout, spec, input.name, i * per) : fromFloats(image, layout, spec, input.name, i * per).buffer), tensor: true });
      }
      return items;
    }
    default:
      throw Errors.InvalidRequest(`Input "${input.name}" has datatype ${String(datatype).slice(0, 20)}, and the model takes BYTES, UINT8 or FP32.`, 'Send base64-encoded images as BYTES, RGB pixels as UINT8, or the model input as FP32.');
  }
}

/** The layout an image tensor's shape says: [N, S, S, 3] or [N, 3, S, S]. */
function layoutOf(shape: number[], spec: PreprocessSpec, name: string): 'NHWC' | 'NCHW' {
  const s = spec.size;
  if (shape.length === 4 && shape[1] === s && shape[2] === s && shape[3] === 3) return 'NHWC';
  if (shape.length === 4 && shape[1] === 3 && shape[2] === s && shape[3] === s) return 'NCHW';
  throw Errors.InvalidRequest(`Input "${name}" has shape [${shape.join(', ')}], and the model takes [N, ${s}, ${s}, 3] or [N, 3, ${s}, ${s}].`, `Resize images to ${s}x${s} first, or send them encoded as BYTES.`);
}

/** The tensor's elements in row-major order, from flat or nested arrays; their count must be what the shape says. */
function flatten(input: OipTensor, expected: number): unknown[] {
  const out: unknown[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (Array.isArray(v)) {
      if (depth >= input.shape.length) throw Errors.InvalidRequest(`The data of input "${input.name}" is nested deeper than its shape.`, 'Send data flat, or nested as the shape says.');
      for (const x of v) {
        walk(x, depth + 1);
        if (out.length > expected) break;
      }
    } else out.push(v);
  };
  if (!Array.isArray(input.data)) throw Errors.InvalidRequest(`The data of input "${input.name}" is not an array.`, 'Put the tensor elements in "data", in row-major order.');
  walk(input.data, 0);
  if (out.length !== expected) {
    throw Errors.InvalidRequest(`Input "${input.name}" has ${out.length > expected ? 'more than ' : ''}${out.length} elements, and its shape [${input.shape.join(', ')}] says ${expected}.`, 'Send as many elements as the shape says.');
  }
  return out;
}

/** RGB pixels (0-255, either layout) normalised into the model's input, as training preprocessed them. */
function fromPixels(values: unknown[], layout: 'NHWC' | 'NCHW', spec: PreprocessSpec, name: string, offset: number): ArrayBuffer {
  const plane = spec.size * spec.size;
  const rgb = new Uint8Array(plane * 3);
  for (let j = 0; j < values.length; j++) {
    const v = values[j];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) throw Errors.InvalidRequest(`Element ${offset + j} of input "${name}" is not a UINT8 (a whole number 0-255).`, 'UINT8 pixels are whole numbers from 0 to 255.');
    // HWC wanted: element j of a CHW image is channel c at pixel p
    rgb[layout === 'NHWC' ? j : (j % plane) * 3 + Math.floor(j / plane)] = v;
  }
  const out = new Float32Array(plane * 3);
  normalizeInto(rgb, spec, out, 0);
  return out.buffer;
}

/** The model's input values as given, put in the model's layout. */
function fromFloats(values: unknown[], layout: 'NHWC' | 'NCHW', spec: PreprocessSpec, name: string, offset: number): Float32Array {
  const plane = spec.size * spec.size;
  const out = new Float32Array(plane * 3);
  for (let j = 0; j < values.length; j++) {
    const v = values[j];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw Errors.InvalidRequest(`Element ${offset + j} of input "${name}" is not a number.`, 'FP32 elements are finite numbers.');
    let k = j;
    if (layout !== spec.layout) k = layout === 'NHWC' ? (j % 3) * plane + Math.floor(j / 3) : (j % plane) * 3 + Math.floor(j / plane);
    out[k] = v;
  }
  return out;
}
