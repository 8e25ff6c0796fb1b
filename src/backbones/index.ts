export { addBackbone, pullBackbone, getBackbone, listBackbones, deleteBackbone, catalog, type Backbone, type InputOverrides } from './service.js';
export { FEATURES_OUTPUT, inferInputLayout } from './graph.js';
