export { addBackbone, pullBackbone, getBackbone, findBackbone, listBackbones, deleteBackbone, catalog, type Backbone, type BackboneSpec, type CatalogEntry, type AddOptions, type InputOverrides } from './service.js';
export { decodeRgb, normalizeInto, inputShape, inputSize, NORMALIZATIONS, MAX_INPUT_PIXELS, type PreprocessSpec, type CropView } from './preprocess.js';
export { FEATURES_OUTPUT, inferInputLayout } from './graph.js';
