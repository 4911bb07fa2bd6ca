// One read that a view shows: its value, or the reason it failed, or that it is under way. Every
// panel keeps its reads in these, so a failure is always on screen (never an empty state that
// claims there is nothing), and a slow answer to an old request never overwrites a newer one.
import { errorMessage } from './data';

export class Load<T> {
  // raw: payloads are large arrays that are replaced, never mutated in place
  value: T | null = $state.raw(null);
  error = $state('');
  loading = $state(false);
  #request = 0;

  /** Show the outcome of `promise`, dropping whatever an earlier `run` or `reset` started. */
  run(promise: Promise<T>): void {
    const request = ++this.#request;
    this.value = null;
    this.error = '';
    this.loading = true;
    promise.then(
      (value) => { if (request === this.#request) { this.value = value; this.loading = false; } },
      (e) => { if (request === this.#request) { this.error = errorMessage(e); this.loading = false; } },
    );
  }

  /** Nothing to show (the selection changed away): forget the value and any pending answer. */
  reset(): void {
    this.#request++;
    this.value = null;
    this.error = '';
    this.loading = false;
  }
}
