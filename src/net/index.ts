/**
 * Network safety: fetching caller-supplied URLs without SSRF, and recognising images by their
 * bytes. Used by function handlers for {"url": ...} events.
 */
export { fetchImage, systemResolver, FETCH_DEFAULTS, type SafeFetchOptions, type FetchedImage, type Resolver, type ResolvedAddress } from './fetch.js';
export { refusedReason } from './address.js';
export { sniffImageType, type ImageType } from './sniff.js';
