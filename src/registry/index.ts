export { registerModel, getModel, listModels, tagModel, exportModel, parseModelRef, checkModelName, deleteModelVersions, type ModelCard, type ModelVersion } from './service.js';
export { importModel, readLabels, type ImportOptions, type ImportResult } from './import.js';
export { identicalTraining } from './reuse.js';
