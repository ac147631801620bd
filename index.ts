/**
 * skiff as a library: the package's entry point (`import { … } from 'skiff'`). References are parsed against the
 * transports, images are opened as sources and destinations, and the copy engine moves them (see the README's
 * Library section). Deeper modules stay importable by path (`skiff/dist/src/…`). It sits beside src/ and
 * transports/: like the CLI, it wires the two together, and core itself never imports a transport.
 */
export { parseImageRef } from './src/core/ref.js';
export { transports } from './transports/index.js';
export { copyImage, makePlan, type CopyOptions, type CopyResult } from './src/copy/copy.js';
export { inspectImage, readConfig, resolveImage, type InspectOutput } from './src/core/inspect.js';
export { SkiffError, causeChain, exitCodeFor, type ErrorCode } from './src/core/errors.js';
export type { BlobInfo, DestinationCaps, DestinationOptions, ImageDestination, ImageRef, ImageSource, SourceOptions, Transport } from './src/core/image.js';
export { parseManifest, serializeManifest, type Descriptor, type ImageManifest, type IndexManifest, type Manifest, type Platform, type RawManifest } from './src/core/manifest.js';
export { formatDockerReference, parseDockerReference, type DockerReference } from './src/core/reference.js';
export { planContainerfile, type BuildPlan, type PlanOptions, type Stage, type Step } from './src/build/containerfile/plan.js';
