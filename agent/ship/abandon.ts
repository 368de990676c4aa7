/**
 * Promises that can all be given up on at once: the shipper's publishes in flight, which a
 * reconnect abandons (the server they went to may never answer; they are published again
 * under the same ids). Each settled one is forgotten at once. Racing each against one
 * shared long-pending promise instead would leave a reaction on it per publish until the
 * next reconnect: memory that grows with every message a long-lived process sends.
 */
export class Abandonable {
  private readonly pending = new Set<(err: Error) => void>();

  /** `p`, or a rejection with the error given to abandonAll() if that comes first. */
  track<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.add(reject);
      p.then((v) => {
        this.pending.delete(reject);
        resolve(v);
      }, (err: unknown) => {
        this.pending.delete(reject);
        reject(err);
      });
    });
  }

  /** Rejects every tracked promise still pending. */
  abandonAll(err: Error): void {
    for (const reject of this.pending) reject(err);
    this.pending.clear();
  }

  /** How many are still pending. */
  get size(): number {
    return this.pending.size;
  }
}
