// Public surface of the anti-entropy Merkle tree; import from here rather than from tree.js.
export {
  MAX_DEPTH,
  MIN_DEPTH,
  MerkleTree,
  diffTrees,
  entryHash,
  initMerkle,
  leafIndex,
  type Hash64,
} from './tree.js';
export { RangeLeafIndex } from './leaf-index.js';
