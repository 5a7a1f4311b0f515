import type * as v from 'valibot';

type Issue = v.BaseIssue<unknown>;
type Node = { type?: string; entries?: Record<string, Node>; wrapped?: Node; item?: Node; key?: string; options?: Node[]; literal?: unknown };

/** The schema of the object that holds the issue's key: walked down the path, a variant by its key's value. */
function objectAt(root: Node, issue: Issue): Node | undefined {
  let node: Node | undefined = root;
  for (const item of issue.path ?? []) {
    node = pick(node, item.input);
    node = node?.entries?.[String(item.key)] ?? node?.item;
  }
  return pick(node, issue.input);
}

/** Unwraps optional and picks a variant's option by the discriminating key in `input`. */
function pick(node: Node | undefined, input: unknown): Node | undefined {
  while (node?.wrapped) node = node.wrapped;
  if (node?.options && node.key) {
    const value = (input as Record<string, unknown> | undefined)?.[node.key];
    return node.options.find((o) => o.entries?.[node!.key!]?.literal === value);
  }
  return node;
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** The known key a typo most likely meant: close in spelling, and not set already. */
function nearest(key: string, known: string[], given: object): string | undefined {
  const scored = known.filter((k) => !(k in given)).map((k) => [k, distance(key.toLowerCase(), k.toLowerCase())] as const);
  const [best] = scored.filter(([k, d]) => d <= Math.max(2, Math.floor(k.length / 3))).sort((a, b) => a[1] - b[1]);
  return best?.[0];
}

/**
 * One phrase per issue, in three kinds: a required key left out, a key that is not a setting (with the
 * setting it most likely misspells, whose absence is then not reported too), and a value that is invalid.
 */
export function describeIssues(schema: unknown, issues: readonly Issue[]): string[] {
  const where = (i: Issue, key?: string) => [...(i.path ?? []).map((p) => String(p.key)), ...(key ? [key] : [])].join('.') || '(root)';
  const meant = new Set<string>();
  const lines = new Map<Issue, string>();
  for (const i of issues) {
    // valibot reports both an unknown key and a missing one as a strict_object issue, the unknown one "expected never".
    if (i.type !== 'strict_object' || i.expected !== 'never') continue;
    const parent = i.path?.slice(0, -1) ?? [];
    const key = String(i.path?.at(-1)?.key);
    const holder = { ...i, path: parent.length ? (parent as Issue['path']) : undefined, input: i.path?.at(-1)?.input } as Issue;
    const given = (holder.input ?? {}) as object;
    const suggestion = nearest(key, Object.keys(objectAt(schema as Node, holder)?.entries ?? {}), given);
    if (suggestion) meant.add(where(holder, suggestion));
    lines.set(i, `${where(i)}: unknown key${suggestion ? `, did you mean ${suggestion}?` : ' (not a setting here)'}`);
  }
  return issues.flatMap((i) => {
    if (lines.has(i)) return [lines.get(i)!];
    if (i.type === 'strict_object') {
      return meant.has(where(i)) ? [] : [`${where(i)}: required`];
    }
    // valibot's own wording ("Invalid type: Expected (a | b) but received c") said plainly; ours as written.
    const builtIn = /^Invalid \w+: /.test(i.message);
    return [`${where(i)}: invalid, ${builtIn ? `expected ${i.expected?.replace(/^\((.*)\)$/, '$1')}, got ${i.received}` : i.message}`];
  });
}
