// The widget's request logic, without the DOM: which inputs to send, when, and which
// results to draw. Used by widget.js; tested in node (js/test/requests.test.js).
//
// A request is the inputs (`text`, `n_similar`, `method`) set on the model together with
// a bumped `request_id`; the kernel (or the web page's HttpModel) answers with the
// results and `result_id` = the request it answers. At most one request is in flight:
// input arriving meanwhile is queued (its latest value only) and sent when the answer
// comes, so a slow kernel never builds up a backlog.

/** `model.get(key)`, or `fallback` when the value is missing. */
export function read(model, key, fallback) {
  const v = model.get(key);
  return v === undefined || v === null ? fallback : v;
}

export class RequestGate {
  /**
   * @param {{get: Function, set: Function, save_changes: Function}} model
   * @param {Object<string, *>} defaults the value an input has while the model has none
   */
  constructor(model, defaults = {}) {
    this.model = model;
    this.defaults = defaults;
    this.queued = false; // input waiting for the request in flight to be answered
  }

  /** Whether a request was sent and not answered yet. */
  inFlight() {
    return Number(read(this.model, "result_id", 0)) < Number(read(this.model, "request_id", 0));
  }

  /**
   * Send the inputs that differ from the model's as one request, or queue them while a
   * request is in flight. Keys whose value is `undefined` are left out.
   * @returns {"sent" | "queued" | "unchanged"}
   */
  submit(inputs) {
    if (this.inFlight()) {
      this.queued = true;
      return "queued";
    }
    this.queued = false;
    let changed = false;
    for (const [key, value] of Object.entries(inputs)) {
      if (value !== undefined && value !== read(this.model, key, this.defaults[key])) {
        this.model.set(key, value);
        changed = true;
      }
    }
    if (!changed) return "unchanged";
    this.model.set("request_id", Number(read(this.model, "request_id", 0)) + 1);
    this.model.save_changes();
    return "sent";
  }

  /** When a result arrives: whether queued input is now due (call `submit` again). */
  due() {
    return this.queued && !this.inFlight();
  }
}

/** `value` as an integer in [lo, hi]; `fallback` for a field being retyped or not a number. */
export function clampN(value, fallback, lo, hi) {
  if (typeof value === "string" && !value.trim()) return fallback;
  const n = Math.round(Number(value));
  if (!Number.isFinite(n)) return fallback;
  return Math.min(hi, Math.max(lo, n));
}
