// Builds the browser client into server/web/dist/, which the server serves at /assets/:
//
//   pages.js  the light script every HTML page loads (delete confirmation, local times)
//   room.js   the 3D room (Babylon.js, WebXR, phoenix.js)
//   avatar.gltf and other files the client loads, copied from the repo's assets/
//
// Each bundle is minified, has a linked source map, a metafile (NAME.meta.json,
// for `npx esbuild-visualizer` or https://esbuild.github.io/analyze/) and a
// gzip twin (NAME.gz) that the server sends to browsers that accept gzip.
//
//   node server/web/build.mjs            build once, print raw and gzip sizes
//   node server/web/build.mjs --watch    rebuild on every change
//
// Only deep @babylonjs/core imports keep room.js small: `import * from
// "@babylonjs/core"` pulls in all of Babylon (about 7 MB).

import * as esbuild from "esbuild"
import {copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync} from "node:fs"
import {dirname, join, relative} from "node:path"
import {fileURLToPath} from "node:url"
import {gzipSync} from "node:zlib"

const WEB = dirname(fileURLToPath(import.meta.url))
const ROOT = join(WEB, "..", "..")
const DIST = join(WEB, "dist")
/** Files from the repo's assets/ that the browser client loads. */
const COPIED_ASSETS = ["avatar.gltf"]
/** What gets a .gz twin: text that compresses well. */
const COMPRESSIBLE = /\.(js|gltf|json|css|svg)$/

const BUNDLES = [
  {name: "pages", entry: join(WEB, "src", "pages.ts")},
  {name: "room", entry: join(WEB, "src", "room", "main.ts")},
]

// Babylon's materials import their WGSL (WebGPU) shaders lazily next to the GLSL
// ones. This client only runs Babylon's WebGL engine, so the WGSL modules would be
// dead weight in one bundle: replace them with a module that says so if it is
// ever reached.
const noWebGpuShaders = {
  name: "no-webgpu-shaders",
  setup(build) {
    build.onResolve({filter: /\/ShadersWGSL\//}, (args) => ({path: args.path, namespace: "no-wgsl"}))
    build.onLoad({filter: /.*/, namespace: "no-wgsl"}, () => ({
      contents:
        'throw new Error("WebGPU shaders are not bundled: the Roomscale client renders with WebGL only")',
      loader: "js",
    }))
  },
}

/** esbuild options for one bundle. */
function options({name, entry}) {
  return {
    entryPoints: [entry],
    // Metafile paths are relative to this, whatever directory the script runs from.
    absWorkingDir: ROOT,
    outfile: join(DIST, `${name}.js`),
    bundle: true,
    format: "esm",
    // Quest Browser and current desktop browsers: all Chromium/Firefox/Safari of 2023+.
    target: ["es2022", "chrome111", "firefox115", "safari16"],
    minify: true,
    sourcemap: "linked",
    metafile: true,
    legalComments: "none",
    // Dynamic imports (Babylon's lazily loaded shaders) stay inside the one bundle.
    splitting: false,
    tsconfig: join(WEB, "tsconfig.json"),
    plugins: [noWebGpuShaders],
    logLevel: "warning",
  }
}

/** Copies the client's files from assets/ and returns their sizes (with gzip twins written). */
function copyAssets() {
  for (const file of COPIED_ASSETS) {
    copyFileSync(join(ROOT, "assets", file), join(DIST, file))
  }
  return compress(COPIED_ASSETS.map((file) => join(DIST, file)).filter((file) => COMPRESSIBLE.test(file)))
}

/** Writes NAME.gz next to each compressible output and returns {file: [raw, gzip]}. */
function compress(files) {
  const sizes = {}
  for (const file of files) {
    const raw = readFileSync(file)
    const gzip = gzipSync(raw, {level: 9})
    writeFileSync(`${file}.gz`, gzip)
    sizes[file] = [raw.byteLength, gzip.byteLength]
  }
  return sizes
}

function report(name, result) {
  writeFileSync(join(DIST, `${name}.meta.json`), JSON.stringify(result.metafile))
  const outputs = Object.keys(result.metafile.outputs)
    .map((file) => join(ROOT, file))
    .filter((file) => COMPRESSIBLE.test(file))
  return compress(outputs)
}

function printSizes(sizes) {
  for (const [file, [raw, gzip]] of Object.entries(sizes)) {
    const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`
    console.log(`${relative(ROOT, file).padEnd(32)} ${kib(raw).padStart(12)} raw ${kib(gzip).padStart(12)} gzip`)
  }
}

async function buildOnce() {
  rmSync(DIST, {recursive: true, force: true})
  mkdirSync(DIST, {recursive: true})
  const copied = copyAssets()
  const started = performance.now()
  const results = await Promise.all(BUNDLES.map(async (bundle) => [bundle.name, await esbuild.build(options(bundle))]))
  const sizes = {}
  for (const [name, result] of results) {
    Object.assign(sizes, report(name, result))
  }
  Object.assign(sizes, copied)
  printSizes(sizes)
  console.log(`built ${relative(ROOT, DIST)}/ in ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

async function watch() {
  mkdirSync(DIST, {recursive: true})
  copyAssets()
  for (const bundle of BUNDLES) {
    const rebuilt = {
      name: "report",
      setup(build) {
        build.onEnd((result) => {
          if (result.errors.length === 0) {
            printSizes(report(bundle.name, result))
          }
        })
      },
    }
    const context = await esbuild.context({...options(bundle), plugins: [noWebGpuShaders, rebuilt]})
    await context.watch()
  }
  console.log(`watching ${relative(ROOT, join(WEB, "src"))}/ (Ctrl-C stops); assets/ files are copied at start only`)
}

try {
  if (process.argv.includes("--watch")) {
    await watch()
  } else {
    await buildOnce()
  }
} catch (error) {
  // esbuild has already printed the located errors; say what to do next.
  console.error(`build failed: ${error.message.split("\n")[0]}`)
  console.error(`fix the errors above, then run \`node ${relative(process.cwd(), join(WEB, "build.mjs"))}\` again`)
  process.exit(1)
}

