// The browser's physics step (server/web/src/room/physics.ts) timed in node,
// for `cargo xtask bench` beside the Rust figures of physics/benches/flight.rs:
// ns per object per step over throws of each kind, stepped from release to
// rest again and again, and per simulated second of flight.
//
//   node physics/benches/flight-ts.mjs

import {loadTs} from "../../server/web/test/load.mjs"

const physics = await loadTs("src/room/physics.ts")
const {Body, World, step, STEP_SECONDS} = physics

// The same spread of throws as the Rust bench: onto the table, the floor, the walls.
let seed = 0x9e3779b9
const next = () => {
  seed ^= seed << 13
  seed >>>= 0
  seed ^= seed >>> 17
  seed ^= seed << 5
  seed >>>= 0
  return seed / 0xffffffff
}
const kinds = ["cube", "ball", "marker"]
const throws = Array.from({length: 66}, (_, i) => {
  const position = [next() * 4 - 2, 0.8 + next(), next() * 3 - 1]
  const velocity = [next() * 8 - 4, next() * 5, next() * 8 - 5]
  const spin = [next() * 10 - 5, next() * 10 - 5, next() * 10 - 5]
  return Body.released({kind: kinds[i % 3], position, orientation: [0, 0, 0, 1]}, velocity, spin)
})

const world = World.room()
const flying = throws.map((b) => b.clone())
let best = 0
for (let run = 0; run < 5; run++) {
  const start = performance.now()
  let steps = 0
  while (performance.now() - start < 400) {
    for (let i = 0; i < flying.length; i++) {
      if (step(world, flying[i])) flying[i] = throws[i].clone()
    }
    steps += flying.length
  }
  best = Math.max(best, steps / ((performance.now() - start) / 1000))
}
const nsPerStep = 1e9 / best
console.log(`object physics, physics.ts in node ${process.version} (one core, ${throws.length / 3} throws of each kind in turn):`)
console.log(`  step              ${nsPerStep.toFixed(1).padStart(8)} ns per object per step`)
console.log(
  `  flight            ${((nsPerStep / STEP_SECONDS) / 1e3).toFixed(2).padStart(8)} us per object per simulated second ` +
    `(${Math.round(1 / STEP_SECONDS)} steps): a core flies ${Math.round((STEP_SECONDS * 1e9) / nsPerStep)} objects in real time`,
)
