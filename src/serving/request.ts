import { Errors, KennelError } from '../core/index.js';
import { sniffImageType, type ImageType } from '../net/index.js';

/** Content types an invocation may carry as raw bytes: the image types sniffImageType recognises. */
export const IMAGE_TYPES: readonly ImageType[] = ['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/avif'];

/** Largest image accepted, in bytes (raw, or after base64 decoding). */
export const DEFAULT_MAX_IMAGE_BYTES = 8 * 1024 * 1024;

/**
 * Checks raw image bytes before they go to a replica: not empty, not too large, and a supported
 * format by their leading bytes. The declared content type is not trusted: an SVG or any other
 * file sent as image/jpeg is refused here, so libvips never sees SVG, PDF or other formats with
 * a larger attack surface.
 */
export function checkImage(bytes: Uint8Array, maxBytes = DEFAULT_MAX_IMAGE_BYTES): Uint8Array {
  if (bytes.length === 0) throw Errors.EmptyBody('The request body is empty.', 'Send the image bytes (e.g. image/jpeg or image/png), or JSON {"image": "<base64>"}.');
  if (bytes.length > maxBytes) throw tooLarge(maxBytes);
  if (!sniffImageType(bytes)) {
    throw Errors.UnsupportedImage('The body is not a JPEG, PNG, WebP, GIF, TIFF or AVIF image.', 'Send the image file itself; other formats (SVG, BMP, HEIC, PDF, ...) are not accepted: convert them to JPEG or PNG first.');
  }
  return bytes;
}

export function tooLarge(maxBytes: number): KennelError {
  return Errors.TooLarge(`The image is larger than ${Math.round(maxBytes / 1024 / 1024)} MiB.`, 'Resize it before sending: the model looks at a few hundred pixels.');
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** Decodes the `image` of a JSON body: standard or URL-safe base64, optionally as a data: URL. */
export function decodeBase64Image(value: string, maxBytes = DEFAULT_MAX_IMAGE_BYTES): Uint8Array {
  let text = value;
  const dataUrl = /^data:([^;,]*)(;base64)?,/.exec(text);
  if (dataUrl) {
    if (!dataUrl[2]) throw Errors.InvalidBase64('The data: URL in "image" is not base64-encoded.', 'Use data:image/jpeg;base64,... or plain base64.');
    text = text.slice(dataUrl[0].length);
  }
  text = text.replace(/\s+/g, '');
  if (text.length === 0) throw Errors.EmptyBody('"image" is empty.', 'Put the base64-encoded image bytes in "image".');
  const urlSafe = !BASE64.test(text);
  if ((urlSafe && !BASE64URL.test(text)) || text.replace(/=+$/, '').length % 4 === 1) {
    throw Errors.InvalidBase64('"image" is not valid base64.', 'Encode the image file with base64 (e.g. base64 -w0 photo.jpg).');
  }
  if (Math.floor((text.length * 3) / 4) > maxBytes + 3) throw tooLarge(maxBytes);
  return checkImage(Buffer.from(text, urlSafe ? 'base64url' : 'base64'), maxBytes);
}
