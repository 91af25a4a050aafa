// Room moderation as the page offers it, and paging through older history;
// plain logic without the DOM (`test/moderation.test.mjs` checks it).
//
// The server decides who may do what; these rules only choose which controls
// a person is offered: the owner and co-moderators get per-person controls
// (mute, remove) and the room lock, the owner alone names co-moderators, and
// nobody gets controls on themselves; only the owner gets controls on
// co-moderators, and nobody on the owner.

import type {Governance, HistoryPage, ModerationNotice, ModeratePush, Role, RoomEvent} from "@roomscale/protocol"

import {nameWithTag} from "./names"

/** What a person is in a room, by its governance. */
export function roleOf(governance: Governance | null, userId: string): Role {
  if (!governance) {
    return "member"
  }
  if (governance.owner_user_id === userId) {
    return "owner"
  }
  return governance.moderators.includes(userId) ? "moderator" : "member"
}

/** True for the owner and co-moderators. */
export function mayModerate(governance: Governance | null, userId: string): boolean {
  return roleOf(governance, userId) !== "member"
}

/** One button a moderator is offered, and the `moderate` push it sends. */
export interface ModerationControl {
  /** A stable name for the button (its `data-action`). */
  action: "mute" | "unmute" | "remove" | "make-moderator" | "unmake-moderator" | "lock" | "unlock"
  label: string
  push: ModeratePush
}

/** The person a control acts on, as the people list knows them. */
export interface ModerationTarget {
  userId: string
  /** Muted by a moderator (presence's `moderator_muted`). */
  moderatorMuted: boolean
}

/** The per-person controls `viewerId` is offered for `target` (none for plain members). */
export function controlsFor(governance: Governance | null, viewerId: string, target: ModerationTarget): ModerationControl[] {
  const viewer = roleOf(governance, viewerId)
  const targetRole = roleOf(governance, target.userId)
  if (viewer === "member" || target.userId === viewerId || targetRole === "owner" || (targetRole === "moderator" && viewer !== "owner")) {
    return []
  }
  const userId = target.userId
  const controls: ModerationControl[] = [
    target.moderatorMuted
      ? {action: "unmute", label: "Unmute", push: {action: "mute", user_id: userId, muted: false}}
      : {action: "mute", label: "Mute voice", push: {action: "mute", user_id: userId, muted: true}},
    {action: "remove", label: "Remove", push: {action: "remove", user_id: userId}},
  ]
  if (viewer === "owner") {
    controls.push(
      targetRole === "moderator"
        ? {action: "unmake-moderator", label: "Remove moderator", push: {action: "moderator", user_id: userId, moderator: false}}
        : {action: "make-moderator", label: "Make moderator", push: {action: "moderator", user_id: userId, moderator: true}},
    )
  }
  return controls
}

/** The room lock toggle `viewerId` is offered, or null for plain members. */
export function lockControl(governance: Governance | null, viewerId: string): ModerationControl | null {
  if (!governance || !mayModerate(governance, viewerId)) {
    return null
  }
  return governance.locked
    ? {action: "unlock", label: "Unlock room", push: {action: "lock", locked: false}}
    : {action: "lock", label: "Lock room", push: {action: "lock", locked: true}}
}

/**
 * A moderation act as one line everyone reads in the room's log, each person
 * with their tag: "Ada (YWNP) muted Bo (D86M)". `nameOf` finds a name for a
 * target the notice did not name (someone no longer in the room).
 */
export function describeNotice(notice: ModerationNotice, nameOf: (userId: string) => string | null): string {
  const by = nameWithTag(notice.by_name, notice.by_user_id)
  const act = notice.act
  if (act.action === "lock") {
    return `${by} ${act.locked ? "locked" : "unlocked"} the room`
  }
  const targetName = notice.target_name ?? nameOf(act.user_id) ?? "someone who has left"
  const target = nameWithTag(targetName, act.user_id)
  switch (act.action) {
    case "mute":
      return act.muted ? `${by} muted ${target}` : `${by} unmuted ${target}`
    case "remove":
      return `${by} removed ${target} from the room`
    case "moderator":
      return act.moderator ? `${by} made ${target} a moderator` : `${by} removed ${target} as a moderator`
  }
}

/** A run of history the page has not shown: events older than `before` and newer than `floor`. */
interface HistoryGap {
  before: number
  floor: number
}

/**
 * Which older events the page still lacks. A first join that was cut short
 * leaves everything before its first event; a rejoin that was cut short leaves
 * the run between what the page had and the rejoin's first event. Pages are
 * asked for newest gap first (the one nearest what the visitor is reading).
 */
export class HistoryGaps {
  private readonly gaps: HistoryGap[] = []

  /** After a join: `hadUpTo` is the newest event id the page held before it (0 on a first join). */
  joined(events: RoomEvent[], truncated: boolean, hadUpTo: number): void {
    if (!truncated) {
      return
    }
    // An empty, cut-short replay (one event larger than the whole allowance) leaves everything after hadUpTo.
    const before = events.length > 0 ? Math.min(...events.map((event) => event.id)) : Number.MAX_SAFE_INTEGER
    if (before > hadUpTo + 1) {
      this.gaps.push({before, floor: hadUpTo})
    }
  }

  /** Whether older messages can be loaded. */
  get hasOlder(): boolean {
    return this.gaps.length > 0
  }

  /** The `before_id` of the next `history` push, or null when nothing is missing. */
  nextBeforeId(): number | null {
    return this.gaps.length > 0 ? this.gaps[this.gaps.length - 1].before : null
  }

  /** Records the page the server answered to `history {before_id: beforeId}`. */
  received(beforeId: number, page: HistoryPage): void {
    const index = this.gaps.findIndex((gap) => gap.before === beforeId)
    if (index < 0) {
      return
    }
    const gap = this.gaps[index]
    const oldest = page.events.length > 0 ? Math.min(...page.events.map((event) => event.id)) : null
    if (!page.more || oldest === null || oldest <= gap.floor + 1) {
      // Everything back to what the page already had (or to the room's start) is here.
      this.gaps.splice(index, 1)
    } else {
      gap.before = oldest
    }
  }
}
