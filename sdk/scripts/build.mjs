// Builds the SDK's bundles with esbuild (types come from `tsc -p tsconfig.build.json`):
//   dist/index.mjs        ES module, socket.io-client left as an import
//   dist/index.cjs        CommonJS, socket.io-client left as a require
//   dist/realtime-sdk.js  <script> bundle with socket.io-client inside, one global: RealtimeSDK
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

const common = {
  absWorkingDir: root,
  entryPoints: ['src/index.ts'],
  bundle: true,
  target: ['es2019'],
  sourcemap: true,
  logLevel: 'warning',
  define: { __SDK_VERSION__: JSON.stringify(pkg.version) },
  legalComments: 'none',
};

rmSync(join(root, 'dist'), { recursive: true, force: true });
await Promise.all([
  build({ ...common, format: 'esm', platform: 'neutral', external: ['socket.io-client'], outfile: 'dist/index.mjs' }),
  build({ ...common, format: 'cjs', platform: 'node', external: ['socket.io-client'], outfile: 'dist/index.cjs' }),
  build({
    ...common,
    format: 'iife',
    platform: 'browser',
    globalName: 'RealtimeSDK',
    minify: true,
    outfile: 'dist/realtime-sdk.js',
    banner: { js: `/* ${pkg.name} ${pkg.version} (with socket.io-client ${pkg.dependencies['socket.io-client']}) */` },
  }),
]);
console.log('built dist/index.mjs, dist/index.cjs, dist/realtime-sdk.js');
