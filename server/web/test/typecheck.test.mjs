// The web client type-checks (tsc --noEmit with server/web/tsconfig.json), so
// the generated protocol types and the code that uses them cannot drift apart.

import assert from "node:assert/strict"
import {spawnSync} from "node:child_process"
import {existsSync} from "node:fs"
import {join} from "node:path"
import {test} from "node:test"

import {ROOT, WEB} from "./load.mjs"

test("the web client type-checks", (t) => {
  const tsc = join(ROOT, "node_modules", ".bin", "tsc")
  if (!existsSync(tsc)) {
    process.stderr.write("skipped: typescript is not installed; run `npm ci` in the project root\n")
    t.skip("typescript is not installed")
    return
  }
  const result = spawnSync(tsc, ["--noEmit", "-p", WEB], {encoding: "utf8"})
  assert.equal(result.status, 0, `tsc found problems:\n${result.stdout}${result.stderr}`)
})
