export { registerModel, getModel, listModels, tagModel, exportModel, parseModelRef, checkModelName, deleteModelVersions, type ModelCard, type ModelVersion } from './service.js';
export { importModel, readLabels } from './import.js';
export { identicalTraining } from './reuse.js';
