// The official phoenix.js client (Socket, Channel, Presence) in one room with a
// Rust client; driven by server/tests/integration/phoenix_js.rs.
//
//   node --experimental-websocket phoenix-room.mjs <socket url> <token> <topic> <other user id>
//
// Prints one line per milestone; the Rust side waits for each and acts.
import {Socket, Presence} from "phoenix"
import {createInterface} from "node:readline"

const [url, token, topic, otherUser] = process.argv.slice(2)
const say = (line) => console.log(line)
const fail = (why) => { console.error(`phoenix-room: ${why}`); process.exit(1) }
setTimeout(() => fail("timed out after 20 s"), 20_000).unref()

const socket = new Socket(url, {params: {token}, transport: globalThis.WebSocket})
socket.onError((e) => say(`socket error ${e?.message ?? e}`))
socket.connect()

const channel = socket.channel(topic, {protocol_version: 1, name: "Node <phoenix>", colour: "#22aa66", client_kind: "web"})
const presence = new Presence(channel)
const lines = createInterface({input: process.stdin})
const commands = lines[Symbol.asyncIterator]()
const next = async () => (await commands.next()).value

const waitFor = (check, what) => new Promise((resolve) => {
  const poll = () => check() ? resolve() : setTimeout(poll, 10)
  poll()
})

let chats = []
channel.on("event", (event) => { if(event.body.type === "chat"){ chats.push(event) } })
let left = false
presence.onLeave((id, current, leftPres) => { if(id === otherUser && current.metas.length === 0){ left = true } })

channel.join()
  .receive("ok", async (reply) => {
    say(`joined ${reply.user_id} slot ${reply.slot}`)
    // 1. The Rust client joins: presence shows it with its metadata.
    await waitFor(() => presence.list((id, p) => id).includes(otherUser), "rust client in presence")
    const meta = presence.list((id, p) => id === otherUser ? p.metas[0] : null).find(Boolean)
    say(`presence has ${otherUser} named ${meta.name} kind ${meta.client_kind}`)
    // 2. Chat from here to there.
    channel.push("chat", {text: "hello from phoenix.js"})
      .receive("ok", (r) => say(`chat stored ${r.id}`))
      .receive("error", (e) => fail(`chat refused: ${JSON.stringify(e)}`))
    // 3. Chat from there to here.
    await waitFor(() => chats.some(c => c.user_id === otherUser), "chat from rust")
    say(`got chat ${JSON.stringify(chats.find(c => c.user_id === otherUser).body.text)}`)
    // 4. An unknown event gets an error reply naming it.
    channel.push("dance", {}).receive("error", (e) => say(`unknown event refused: ${e.code}`))
    // 5. The Rust client leaves: a presence diff removes it.
    await waitFor(() => left, "presence leave")
    say("saw leave")
    await next()
    socket.disconnect(() => process.exit(0))
  })
  .receive("error", (e) => fail(`join refused: ${JSON.stringify(e)}`))
