// The room page (room.js): the visitor in a 3D room with everyone else.
//
// The server renders `<div id="room-root" data-room-id data-user-id
// data-token data-room-name>` (and the room's details, which the Room panel
// takes); this script builds the room UI in it and the lobby over it, opens
// the socket and loads the scene and avatar model while the visitor is in the
// lobby, joins the room channel when they enter (starting voice with the
// chosen microphone, or listening only), sets up WebXR, and then each frame:
// sends the visitor's own pose, and shows every other member's avatar about 100 ms behind their latest pose.
// Moderation (who may, the notices everyone sees, a member muted by a
// moderator), older history and the room's shared objects (objects.ts, picked
// up with grab.ts) come and go through the same channel.

import {Vector3} from "@babylonjs/core/Maths/math.vector"
import type {WebXRDefaultExperience} from "@babylonjs/core/XR/webXRDefaultExperience"

import type {Governance, JoinReply, ModerationNotice, PresenceMeta, RoomEvent, Speaking} from "@roomscale/protocol"

import {peopleText, type Headcount} from "../headcount"
import type {PoseBatch} from "../protocol/pose"
import {listMicrophones, meterValue, playTestSound} from "./audioCheck"
import {AvatarFactory, type Avatar} from "./avatars"
import {RoomConnection, type ConnectionStatus, type PresenceMember} from "./connection"
import {installDebugSurface, type RoomState} from "./debug"
import {AvatarTrack} from "./interpolation"
import {Lobby, type LobbyChoice} from "./lobby"
import {flatPose, immersivePose, PoseSender} from "./localPose"
import {Grabbing} from "./grab"
import {controlsFor, describeNotice, HistoryGaps, lockControl, roleOf, type ModerationControl} from "./moderation"
import {RoomObjects} from "./objects"
import {chatTextProblem, normalizeName, userTag} from "./names"
import {loadProfile, saveProfile, validateColour, validateName, type Profile} from "./profile"
import {createRoomScene, EYE_HEIGHT, SPAWN_LOOK_AT_HEIGHT} from "./scene"
import {TouchControls} from "./touch"
import {RoomUi, type ChatLine, type NoticeLine, type Person} from "./ui"
import {renderSpatialProbe, Voice, type Vec3} from "./voice"
import {enterVr, isImmersive, setUpXr, type XrSupport} from "./xr"

const AVATAR_URL = "/assets/avatar.gltf"
/** Visitors arrive spread on a circle around the room's centre, facing it. */
const SPAWN_RADIUS = 2.5
const GOLDEN_ANGLE = Math.PI * (3 - Math.sqrt(5))

function start(): void {
  performance.mark("roomscale:start")
  const root = document.getElementById("room-root")
  const roomId = root?.dataset.roomId
  const userId = root?.dataset.userId
  const token = root?.dataset.token
  if (!root || !roomId || !userId || !token) {
    console.error("room.js: this page has no #room-root with data-room-id, data-user-id and data-token")
    return
  }
  /** The visitor's own user id, for functions declared below (which TypeScript does not narrow). */
  const selfUserId: string = userId
  let profile = loadProfile(userId)
  const ui = new RoomUi(root, profile)
  const lobby = new Lobby(ui.view, {
    roomName: root.dataset.roomName ?? document.title,
    userId,
    profile,
    problem: (typed) => validateName(typed.name) ?? validateColour(typed.colour),
  })
  /** What the visitor chose in the lobby; null until they enter. */
  let entered: LobbyChoice | null = null
  let state: RoomState = "lobby"
  let inRoomAt: number | null = null
  let selfSlot: number | null = null
  let joinedOnce = false
  let members: PresenceMember[] = []
  let factory: AvatarFactory | null = null
  let xr: XrSupport = {experience: null, unavailableReason: null}
  const avatars = new Map<number, Avatar>()
  const tracks = new Map<number, AvatarTrack>()
  const chat = new Map<number, ChatLine>()
  let lastSeenId = 0
  const speaking = new Set<string>()
  let governance: Governance | null = null
  const notices: NoticeLine[] = []
  const history = new HistoryGaps()
  let statusReason: string | null = null
  /** Made with the scene, just after connect(); a join that came first waits here. */
  let objects: RoomObjects | null = null
  let pendingObjects: JoinReply | null = null

  const connection = new RoomConnection({
    roomId,
    token,
    profile: () => profile,
    lastSeenId: () => lastSeenId,
    handlers: {
      status: (status: ConnectionStatus) => {
        ui.setStatus(status)
        statusReason = "reason" in status ? status.reason : null
        if (status.kind === "failed") {
          // Out of the room for good: our voice goes with it.
          voice.stop()
          lobby.setFailed(`You cannot enter: ${status.reason}`)
        }
        // In the lobby the room is not entered yet: only an end is news there.
        if (status.kind !== "joined" && (entered || status.kind === "failed")) {
          state = status.kind
        }
        updateState()
      },
      open: () => loaded("socket"),
      joined: (reply: JoinReply) => {
        performance.mark("roomscale:joined")
        startRenderLoop()
        selfSlot = reply.slot
        const firstJoin = !joinedOnce
        // Every (re)join starts every track afresh: the room's pose clock may
        // have restarted with the room, and slots may have changed hands.
        tracks.clear()
        poseSender.reset()
        if (!joinedOnce) {
          joinedOnce = true
          placeAtSpawn(reply.slot)
        }
        governance = reply.governance
        objects?.joined(reply.objects ?? [], reply.slot)
        pendingObjects = objects ? null : reply
        history.joined(reply.events, reply.truncated, lastSeenId)
        ui.setOlderMessages(history.hasOlder)
        addEvents(reply.events)
        showGovernance()
        // Voice starts with the first join, as chosen in the lobby; a rejoin is a
        // new connection to the server: voice starts over on it.
        if (firstJoin && entered) {
          voice.start(entered.microphone).catch((error: Error) => console.warn(`voice: ${error.message}`))
        } else if (voice.state !== "off") {
          voice.restart().catch(() => {})
        }
        state = "joined"
        reconcileAvatars()
        updateState()
      },
      presence: (list: PresenceMember[]) => {
        members = list
        // setModeratorMuted calls back to redraw the voice controls and the people list.
        voice.setModeratorMuted(selfModeratorMuted())
        ui.setPeople(people())
        reconcileAvatars()
        updateState()
      },
      event: (event: RoomEvent) => {
        addEvents([event])
        objects?.event(event)
      },
      objectHolder: (push) => objects?.holderChanged(push),
      moderation: (notice: ModerationNotice) => {
        governance = notice.governance
        const line = {text: describeNotice(notice, nameOf), at: Date.now()}
        notices.push(line)
        ui.showNotice(line)
        showGovernance()
      },
      poses: (batch: PoseBatch, receivedAt: number) => {
        const serverTime = batch.serverTimeMs / 1000
        for (const {slot, pose} of batch.poses) {
          if (slot === selfSlot) {
            continue
          }
          let track = tracks.get(slot)
          if (!track) {
            track = new AvatarTrack()
            tracks.set(slot, track)
          }
          track.push(receivedAt / 1000, serverTime, pose)
        }
        objects?.poses(batch.objects, receivedAt, batch.serverTimeMs)
      },
    },
  })
  const poseSender = new PoseSender((encoded) => connection.sendPose(encoded))
  const voice = new Voice(connection, () => {
    ui.setVoice({state: voice.state, muted: voice.muted, moderatorMuted: voice.moderatorMuted, note: voice.note, listeningOnly: voice.listeningOnly})
    ui.setPeople(people())
  })
  connection.on("speaking", (payload) => {
    const {user_id: id, speaking: now} = payload as Speaking
    if (now) {
      speaking.add(id)
    } else {
      speaking.delete(id)
    }
    for (const avatar of avatars.values()) {
      if (avatar.userId === id) {
        avatar.setSpeaking(now)
      }
    }
    ui.setPeople(people())
  })
  ui.onVoice(
    () => {
      // The microphone chosen in Settings, else the browser's default.
      voice.useMicrophone(ui.microphoneSelect.value).then(showMicrophones, (error: Error) => console.warn(error.message))
    },
    () => {
      voice.setMuted(!voice.muted).catch((error: Error) => console.warn(`mute: ${error.message}`))
    },
  )
  ui.microphoneSelect.addEventListener("change", () => {
    // "" is the listen-only choice here.
    voice.useMicrophone(ui.microphoneSelect.value || null).catch((error: Error) => console.warn(`voice: ${error.message}`))
  })
  let testSound: AudioContext | null = null
  ui.speakerTestButton.addEventListener("click", () => {
    testSound ??= new AudioContext()
    ui.speakerTestButton.disabled = true
    playTestSound(testSound).finally(() => (ui.speakerTestButton.disabled = false))
  })

  /** The microphones in Settings, the one in use selected ("" while listening only). */
  async function showMicrophones(): Promise<void> {
    const microphones = await listMicrophones().catch(() => [])
    const select = ui.microphoneSelect
    select.replaceChildren(new Option("No microphone (listen only)", ""))
    for (const {deviceId, label} of microphones) {
      select.append(new Option(label, deviceId))
    }
    select.value = voice.listeningOnly || voice.state !== "on" ? "" : (voice.microphoneDevice() ?? "")
  }

  // The socket opens while the scene loads and the visitor is in the lobby;
  // entering needs only the join. Nothing arrives before this function
  // returns, so the handlers above never see the scene half made.
  connection.open()

  /** What must be ready before the visitor can enter, in the lobby's words. */
  const loading = {scene: "the room", avatars: "the avatars", socket: "the connection"}
  const ready = new Set<keyof typeof loading>()
  function loaded(part?: keyof typeof loading): void {
    if (part) {
      ready.add(part)
    }
    const waiting = Object.entries(loading).filter(([name]) => !ready.has(name as keyof typeof loading))
    const total = Object.keys(loading).length
    lobby.setProgress(ready.size / total, waiting.length ? `Loading ${waiting.map(([, words]) => words).join(", ")}…` : "Ready.")
  }
  loaded()
  lobby.choice().then((choice) => {
    entered = choice
    // What the server will store and show: NFC, trimmed (the lobby checked it is a name).
    const name = normalizeName(choice.profile.name)
    profile = {name: name.ok ? name.name : choice.profile.name, colour: choice.profile.colour}
    saveProfile(profile)
    if (choice.vr && xr.experience) {
      // Still within the Enter VR click: browsers allow a session only from a gesture.
      enterVrOrSay(xr.experience)
    }
    lobby.close()
    ui.entered(profile)
    stopLobbyPeople()
    state = "connecting"
    connection.join()
    ui.canvas.focus()
  })
  const stopLobbyPeople = pollLobbyPeople(roomId, (text) => lobby.setPeople(text))

  let room: ReturnType<typeof createRoomScene>
  try {
    room = createRoomScene(ui.canvas)
  } catch (error) {
    connection.fail(`this browser cannot draw 3D (${(error as Error).message}); turn on WebGL or try another browser`)
    return
  }
  const {engine, scene, camera, floor} = room
  new TouchControls(ui.view, scene, camera)
  objects = new RoomObjects(scene, connection, (text) => ui.showToast(text))
  // Assigned in the join handler, which TypeScript cannot see has run.
  const joinedFirst = pendingObjects as JoinReply | null
  if (joinedFirst) {
    objects.joined(joinedFirst.objects ?? [], joinedFirst.slot)
    pendingObjects = null
  }
  const roomObjects = objects
  const grabbing = new Grabbing(scene, camera, roomObjects, () => isImmersive(xr))
  performance.mark("roomscale:scene")
  scene.onAfterRenderObservable.addOnce(() => {
    performance.mark("roomscale:first-frame")
    loaded("scene")
    // VR is set up behind the lobby, so its Enter VR works the moment it shows.
    startXr()
  })

  ui.onChat(async (text) => {
    const problem = chatTextProblem(text)
    if (problem) {
      throw new Error(problem)
    }
    await connection.sendChat(text)
  })
  ui.onProfile(async (typed: Profile) => {
    const name = normalizeName(typed.name)
    if (!name.ok) {
      throw new Error(name.reason)
    }
    const problem = validateColour(typed.colour)
    if (problem) {
      throw new Error(problem)
    }
    // What the server will store and show: NFC, trimmed.
    const wanted = {name: name.name, colour: typed.colour}
    await connection.updateProfile(wanted)
    profile = wanted
    saveProfile(profile)
  })
  ui.onModerate(async (control: ModerationControl) => {
    await connection.moderate(control.push)
  })
  ui.onObjects(
    async (kind) => {
      // Half a metre in front of the eyes, a little below them; it drops onto what is below.
      const head = flatOrImmersiveHead()
      const forward = rotate([0, 0, -1], ...head.orientation)
      const length = Math.hypot(forward[0], forward[2]) || 1
      const from: Vec3 = [head.position[0] + (forward[0] / length) * 0.6, Math.max(0.2, head.position[1] - 0.4), head.position[2] + (forward[2] / length) * 0.6]
      await roomObjects.spawn(kind, from)
    },
    () => {
      const head = flatOrImmersiveHead()
      const forward = rotate([0, 0, -1], ...head.orientation)
      return roomObjects.removeLastTouched(head.position.map((c, i) => c + forward[i] * 1.5) as Vec3)
    },
  )

  function flatOrImmersiveHead() {
    return (isImmersive(xr) && xr.experience ? immersivePose(xr.experience) : flatPose(camera)).head
  }

  ui.onLoadOlder(async () => {
    const beforeId = history.nextBeforeId()
    if (beforeId === null) {
      return
    }
    const page = await connection.history(beforeId)
    history.received(beforeId, page)
    addEvents(page.events, {older: true})
    ui.setOlderMessages(history.hasOlder)
  })

  function placeAtSpawn(slot: number): void {
    if (isImmersive(xr)) {
      return
    }
    const angle = slot * GOLDEN_ANGLE
    camera.position.set(Math.sin(angle) * SPAWN_RADIUS, EYE_HEIGHT, Math.cos(angle) * SPAWN_RADIUS)
    camera.setTarget(new Vector3(0, SPAWN_LOOK_AT_HEIGHT, 0))
  }

  /** Adds persisted events; `older` for a history page (which never moves lastSeenId past what it was). */
  function addEvents(events: RoomEvent[], {older = false} = {}): void {
    const added: ChatLine[] = []
    for (const event of events) {
      if (!older) {
        lastSeenId = Math.max(lastSeenId, event.id)
      }
      if (event.body.type !== "chat" || chat.has(event.id)) {
        continue
      }
      const line = {id: event.id, userId: event.user_id, name: event.name, tag: userTag(event.user_id), text: event.body.text, sentAt: event.sent_at}
      chat.set(event.id, line)
      added.push(line)
    }
    ui.showChat(added, {older})
  }

  function people(): Person[] {
    return members.map(({userId: id, metas}) => {
      const newest = metas[metas.length - 1]
      const moderatorMuted = metas.some((meta) => meta.moderator_muted === true)
      return {
        userId: id,
        name: newest.name,
        tag: userTag(id),
        colour: newest.colour,
        kind: newest.client_kind,
        isSelf: id === userId,
        role: governance ? roleOf(governance, id) : (newest.role ?? "member"),
        connections: metas.length,
        speaking: speaking.has(id),
        muted: metas.some((meta) => meta.muted),
        moderatorMuted,
        controls: controlsFor(governance, selfUserId, {userId: id, moderatorMuted}),
      }
    })
  }

  /** A member's display name as presence has it now, for notices that do not name them. */
  function nameOf(id: string): string | null {
    const metas = members.find((member) => member.userId === id)?.metas
    return metas ? metas[metas.length - 1].name : null
  }

  /** Whether a moderator has muted this visitor, by presence. */
  function selfModeratorMuted(): boolean {
    return members.some((member) => member.userId === userId && member.metas.some((meta) => meta.moderator_muted === true))
  }

  /** Redraws what depends on who moderates: the people list's controls and the lock toggle. */
  function showGovernance(): void {
    ui.setModeration(lockControl(governance, selfUserId))
    ui.setPeople(people())
  }

  /** One avatar per connection in presence (keyed by slot), made, updated or removed to match. */
  function reconcileAvatars(): void {
    if (!factory) {
      return
    }
    const wanted = new Map<number, {userId: string; meta: PresenceMeta}>()
    for (const {userId: id, metas} of members) {
      for (const meta of metas) {
        wanted.set(meta.slot, {userId: id, meta})
      }
    }
    for (const [slot, avatar] of avatars) {
      const want = wanted.get(slot)
      if (!want || want.userId !== avatar.userId || avatar.isSelf !== (slot === selfSlot)) {
        avatar.dispose()
        avatars.delete(slot)
        tracks.delete(slot)
      }
    }
    for (const [slot, {userId: id, meta}] of wanted) {
      const existing = avatars.get(slot)
      if (existing) {
        if (existing.name !== meta.name || existing.colour !== meta.colour) {
          existing.setProfile(meta.name, meta.colour)
        }
        continue
      }
      const avatar = factory.create({slot, userId: id, name: meta.name, colour: meta.colour, isSelf: slot === selfSlot})
      avatar.setSpeaking(speaking.has(id))
      avatars.set(slot, avatar)
      if (!avatar.isSelf) {
        avatar.setVisible(false)
      }
    }
  }

  let rendering = false
  function startRenderLoop(): void {
    if (!rendering) {
      rendering = true
      engine.runRenderLoop(() => scene.render())
    }
  }

  /** WebXR is set up once, after the first frame (building it is a long task). */
  let xrStarted = false
  function startXr(): void {
    if (xrStarted) {
      return
    }
    xrStarted = true
    setUpXr(scene, floor, camera).then((support) => {
      xr = support
      const experience = support.experience
      ui.setEnterVr(experience ? () => enterVrOrSay(experience) : null, support.unavailableReason)
      lobby.setVrAvailable(experience !== null)
    })
  }

  function enterVrOrSay(experience: WebXRDefaultExperience): void {
    enterVr(experience).catch((error: Error) => ui.showToast(`VR could not start: ${error.message}`, 6000))
  }

  function updateState(): void {
    if (state === "joined" && inRoomAt === null && selfSlot !== null && avatars.get(selfSlot)?.isSelf) {
      // "In the room": joined, presence lists us, our avatar exists; the next frame shows it.
      scene.onAfterRenderObservable.addOnce(() => {
        performance.mark("roomscale:in-room")
        inRoomAt ??= performance.now()
      })
    }
  }

  let frames = 0
  scene.onBeforeRenderObservable.add(() => {
    const now = performance.now()
    const immersive = isImmersive(xr)
    const pose = immersive && xr.experience ? immersivePose(xr.experience) : flatPose(camera)
    grabbing.frame(now, xr.experience)
    roomObjects.frame(now)
    if (connection.isJoined) {
      poseSender.offer(now, pose, roomObjects.encodedPoses())
    }
    if (++frames % 4 === 0) {
      ui.setMicrophoneLevel(meterValue(voice.microphoneLevel()))
    }
    for (const avatar of avatars.values()) {
      if (avatar.isSelf) {
        // Our own hands are our controllers in VR; on the flat screen nothing of us is drawn.
        avatar.applyPose(pose, immersive)
        continue
      }
      const shown = tracks.get(avatar.slot)?.sample(now / 1000)
      avatar.setVisible(shown != null)
      if (shown) {
        avatar.applyPose(shown)
      }
    }
    const [qx, qy, qz, qw] = pose.head.orientation
    voice.update(
      {position: pose.head.position, forward: rotate([0, 0, -1], qx, qy, qz, qw), up: rotate([0, 1, 0], qx, qy, qz, qw)},
      headOf,
    )
  })

  // One frame shows the room at once; the continuous loop waits for the join.
  // Software-rendered frames (no GPU) would otherwise starve the connection
  // of CPU on a small machine and delay the join by hundreds of milliseconds.
  scene.executeWhenReady(() => scene.render())
  new ResizeObserver(() => engine.resize()).observe(ui.view)

  function headOf(id: string): Vec3 | null {
    for (const avatar of avatars.values()) {
      if (avatar.userId === id && !avatar.isSelf && avatar.isVisible()) {
        return avatar.headPosition()
      }
    }
    return null
  }

  installDebugSurface({
    voice: {
      state: () => voice.state,
      muted: () => voice.muted,
      note: () => voice.note,
      start: () => voice.start(),
      stop: () => voice.stop(),
      setMuted: (muted: boolean) => voice.setMuted(muted),
      tracks: () => voice.tracks(),
      levels: () => voice.levels(),
      peaks: () => voice.peaks(),
      stats: () => voice.stats(),
      speaking: () => [...speaking],
      spatialProbe: renderSpatialProbe,
    },
    state: () => (state === "joined" && inRoomAt === null ? "joining" : state),
    statusReason: () => statusReason,
    governance: () => governance,
    role: () => roleOf(governance, userId),
    moderatorMuted: () => voice.moderatorMuted,
    notices: () => notices,
    olderMessages: () => history.hasOlder,
    selfSlot: () => selfSlot,
    userId: () => userId,
    inRoomAt: () => inRoomAt,
    immersive: () => isImmersive(xr),
    avatars: () => [...avatars.values()],
    people,
    chat: () => [...chat.values()].sort((a, b) => a.id - b.id),
    objects: () => roomObjects.views(),
    selfPose: () => {
      const head = flatOrImmersiveHead()
      return {position: [...head.position] as Vec3, orientation: [...head.orientation] as [number, number, number, number]}
    },
    objectScreenPoint: (id: string) => roomObjects.screenPoint(id),
  })

  AvatarFactory.load(scene, AVATAR_URL).then(
    (model) => {
      performance.mark("roomscale:avatar-model")
      factory = model
      loaded("avatars")
      reconcileAvatars()
      updateState()
    },
    (error: Error) => {
      connection.fail(`the avatar model could not be loaded (${error.message}); reload the page`)
    },
  )
}

/**
 * Tells the lobby who is in the room now (the server's live headcount), every
 * few seconds until the visitor enters; returns the function that stops it.
 */
function pollLobbyPeople(roomId: string, show: (text: string) => void): () => void {
  let timer = 0
  let stopped = false
  const poll = () => {
    fetch(`/api/rooms/${roomId}`, {headers: {accept: "application/json"}})
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(`HTTP ${response.status}`))))
      .then((room: {people?: Headcount}) => {
        const words = room.people ? peopleText(room.people) : "nobody here yet"
        show(`${words.charAt(0).toUpperCase()}${words.slice(1)}.`)
      })
      .catch(() => show("Could not see who is here; you can still enter."))
      .finally(() => {
        if (!stopped) {
          timer = window.setTimeout(poll, 3000)
        }
      })
  }
  poll()
  return () => {
    stopped = true
    clearTimeout(timer)
  }
}

/** `v` rotated by the unit quaternion (x, y, z, w). */
function rotate(v: Vec3, x: number, y: number, z: number, w: number): Vec3 {
  // t = 2 q × v; v' = v + w t + q × t
  const tx = 2 * (y * v[2] - z * v[1])
  const ty = 2 * (z * v[0] - x * v[2])
  const tz = 2 * (x * v[1] - y * v[0])
  return [v[0] + w * tx + (y * tz - z * ty), v[1] + w * ty + (z * tx - x * tz), v[2] + w * tz + (x * ty - y * tx)]
}

start()
