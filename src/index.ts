/** ocitool's public library API. The CLI is a thin shell over these. */
export * from './spec/index.js';
export * from './digest/index.js';
export { OciToolError, isOciToolError, type ErrorCode } from './util/errors.js';
export type { Fetcher, ExistenceChecker, Pusher, Resolver, Tagger, ReadOnlyStore, Store, Collectable } from './content/store.js';
export { fetchBytes } from './content/store.js';
export { walk, successors, childrenOf, fetchManifest, fetchConfig, type ManifestNode, type WalkOptions, type WalkVisit } from './content/graph.js';
export { verifyStore, type VerifyOptions, type VerifyResult, type VerifyProblem } from './content/verify.js';
export { gc, type GcOptions, type GcResult } from './content/gc.js';
export { OciLayout, LAYOUT_VERSION, type LayoutOptions, type PutResult } from './layout/layout.js';
export { verifyLayout } from './layout/verify.js';
export { withFileLock, type LockOptions } from './layout/lock.js';
export * from './reference/index.js';
export { openStore, type OpenedStore, type OpenOptions } from './transport/open.js';
export { resolveImageManifest, selectPlatform } from './image/resolve.js';
