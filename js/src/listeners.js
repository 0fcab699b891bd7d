// Event listeners of the HTTP stand-ins for the anywidget model (http-model.js,
// http-explore-model.js): Backbone-style `on` / `off` with space-separated event names, and
// an `emit` that calls every listener even when one of them throws. DOM-free.

export class Listeners {
  constructor() {
    this._byName = new Map();
  }

  on(event, fn) {
    for (const name of String(event).split(/\s+/).filter(Boolean)) {
      if (!this._byName.has(name)) this._byName.set(name, new Set());
      this._byName.get(name).add(fn);
    }
  }

  off(event, fn) {
    if (event === undefined || event === null) {
      if (fn === undefined) this._byName.clear();
      else for (const set of this._byName.values()) set.delete(fn);
      return;
    }
    for (const name of String(event).split(/\s+/).filter(Boolean)) {
      if (fn === undefined) this._byName.delete(name);
      else this._byName.get(name)?.delete(fn);
    }
  }

  emit(name, ...args) {
    for (const fn of [...(this._byName.get(name) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        // one broken listener must not stop the others (anywidget logs it too)
        console.error(err); // eslint-disable-line no-console
      }
    }
  }
}
