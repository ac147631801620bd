/** What the `skiff` command (bin/skiff.js) needs: the CLI and the rootless re-exec. The bundle's entry point. */
export { main } from './main.js';
export { inRootlessUserns, needsStorage, reexecInUserns } from '../store/userns.js';
