/** Base class of every error understudy raises on purpose; `name` tells them apart. */
export class UnderstudyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A setting (environment variable or flag) has a value we cannot use. */
export class SettingsError extends UnderstudyError {}

/** Bytes that do not decode to a valid entry: bad framing, checksum or schema. */
export class DecodeError extends UnderstudyError {}

/** A path an entry names that lies, or would lie, outside its root. */
export class ConfinementError extends UnderstudyError {}

/** Talking to NATS failed (connect, publish, fetch). */
export class TransportError extends UnderstudyError {}

/** The journal cannot be used (spool unusable, journal locked by another process). */
export class JournalError extends UnderstudyError {}

/**
 * The entry itself is unacceptable: undecodable, badly signed, outside its
 * roots, or inconsistent with its journal. It is quarantined, never applied.
 */
export class BadEntryError extends UnderstudyError {}

/** Applying an entry on the standby failed. */
export class ApplyError extends UnderstudyError {}
