// Instrumentation scopes, as every encoder groups and writes them.
import type { Scope } from "./model.ts";

/** `items` by their scope, in the order each scope first appears. */
export function groupByScope<T extends { readonly scope: Scope }>(
  items: readonly T[],
): Map<Scope, T[]> {
  const groups = new Map<Scope, T[]>();
  for (const item of items) {
    const list = groups.get(item.scope);
    if (list === undefined) groups.set(item.scope, [item]);
    else list.push(item);
  }
  return groups;
}

/** A scope as OTLP/JSON writes it: its version only when it has one. */
export function scopeToJson(scope: Scope): { name: string; version?: string } {
  return scope.version
    ? { name: scope.name, version: scope.version }
    : { name: scope.name };
}
