import { packageConfig } from '../../tsup.base';

// __dirname in the ESM build: the addon is found at ../build/fer_native.node relative to the bundle.
export default packageConfig({ shims: true });
