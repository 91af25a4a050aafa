// Loads a TypeScript module of the web client for a Node test: esbuild bundles
// it (resolving the @roomscale/protocol path alias like the real build) into a
// temporary ES module, which is then imported.

import * as esbuild from "esbuild"
import {mkdtempSync, rmSync, writeFileSync} from "node:fs"
import {tmpdir} from "node:os"
import {dirname, join} from "node:path"
import {fileURLToPath, pathToFileURL} from "node:url"

export const WEB = join(dirname(fileURLToPath(import.meta.url)), "..")
export const ROOT = join(WEB, "..", "..")

export async function loadTs(relativePath) {
  const result = await esbuild.build({
    entryPoints: [join(WEB, relativePath)],
    bundle: true,
    format: "esm",
    platform: "node",
    write: false,
    tsconfig: join(WEB, "tsconfig.json"),
    logLevel: "error",
  })
  const dir = mkdtempSync(join(tmpdir(), "roomscale-web-test-"))
  const file = join(dir, "module.mjs")
  writeFileSync(file, result.outputFiles[0].text)
  try {
    return await import(pathToFileURL(file).href)
  } finally {
    rmSync(dir, {recursive: true, force: true})
  }
}
