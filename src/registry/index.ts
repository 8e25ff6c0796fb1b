export { registerModel, getModel, listModels, tagModel, exportModel, parseModelRef, checkModelName, type ModelCard, type ModelVersion } from './service.js';
