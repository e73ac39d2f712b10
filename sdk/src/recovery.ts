/**
 * Recovery (protocol revision 3): a channel that comes back (a reconnect, a page reload,
 * the answer to `presence:resync`, a gap in `seq`) tells the server the position of the last
 * event it saw, and the server replays what the room sent after it when its history
 * reaches back, instead of a fresh snapshot.
 *
 * A position is a presence event's `seq`, or, for a chat message, the `seq` of the presence
 * event before it and its `sub` after that event. It is meaningful within the history's
 * `epoch`, which the join's acknowledgement gives.
 */

import type { ChatMessage, PresenceSince } from './protocol.js';

/** How the last join or sync that asked to recover went ({@link PresenceChannel.recovery}). */
export interface PresenceRecovery {
  /** True when the server replayed what was missed; false when it sent a fresh snapshot. */
  recovered: boolean;
  /** How many events (presence events and chat messages) it replayed. */
  replayed: number;
}

/**
 * RecoveryPosition follows a channel's place in its room's sequence beyond the presence
 * seq the channel keeps: the history's epoch and the last chat message seen after it.
 */
export class RecoveryPosition {
  /** The room history's epoch, from the last join's acknowledgement; null: no history. */
  epoch: string | null = null;
  private chatSeq = 0;
  private chatSub = 0;

  /** noteChat records a chat message of the room; it reports whether the position moved. */
  noteChat(m: ChatMessage): boolean {
    if (typeof m.seq !== 'number' || typeof m.sub !== 'number') return false;
    if (m.seq < this.chatSeq || (m.seq === this.chatSeq && m.sub <= this.chatSub)) return false;
    this.chatSeq = m.seq;
    this.chatSub = m.sub;
    return true;
  }

  /**
   * since returns the position to send after the presence event of `seq`, or undefined when
   * there is nothing to recover from (no history, no event seen).
   */
  since(seq: number): PresenceSince | undefined {
    if (this.epoch === null || seq <= 0) return undefined;
    const s: PresenceSince = { seq, epoch: this.epoch };
    if (this.chatSeq === seq && this.chatSub > 0) s.sub = this.chatSub;
    return s;
  }

  /** sub returns the chat position after the presence event of `seq` (0: none), for storing. */
  sub(seq: number): number {
    return this.chatSeq === seq ? this.chatSub : 0;
  }

  /** restore sets the position kept by the page before a reload. */
  restore(seq: number, sub: number, epoch: string | null): void {
    this.epoch = epoch;
    this.chatSeq = seq;
    this.chatSub = sub;
  }

  reset(): void {
    this.restore(0, 0, null);
  }
}
