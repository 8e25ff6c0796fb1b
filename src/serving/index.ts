export { Classifier, type Prediction } from './classifier.js';
