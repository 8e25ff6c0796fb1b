/**
 * Network safety: fetching caller-supplied URLs without SSRF, and recognising images by their
 * bytes. Used by function handlers for {"url": ...} events.
 */
export { fetchImage, postJson, type SafeFetchOptions, type Resolver } from './fetch.js';
export { sniffImageType, type ImageType } from './sniff.js';
