export { crossEntropy, sumCrossEntropy } from './losses';
export { stagedSum, stagedMean } from './reduce';
