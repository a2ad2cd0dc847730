export { crossEntropy, sumCrossEntropy } from './losses';
