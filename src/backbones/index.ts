export { addBackbone, pullBackbone, getBackbone, findBackbone, listBackbones, deleteBackbone, catalog, type Backbone, type BackboneSpec, type CatalogEntry, type AddOptions, type InputOverrides } from './service.js';
export { FEATURES_OUTPUT, inferInputLayout } from './graph.js';
