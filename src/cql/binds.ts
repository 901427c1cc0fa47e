import type { Relation, Statement, Term } from './ast.js';

/** Number of bind markers (`?`) in a statement. */
export function countBindMarkers(s: Statement): number {
  let max = -1;
  const visit = (t: Term | undefined): void => {
    if (t === undefined) return;
    if (t.kind === 'bind') max = Math.max(max, t.index);
    else if (t.kind === 'call') t.args.forEach(visit);
  };
  const visitWhere = (rs: Relation[]): void => {
    for (const r of rs) {
      if (r.kind === 'in') {
        if (Array.isArray(r.values)) r.values.forEach(visit);
        else max = Math.max(max, r.values.index);
      } else visit(r.value);
    }
  };
  switch (s.kind) {
    case 'insert':
      s.values.forEach(visit);
      visit(s.ttl);
      visit(s.timestamp);
      break;
    case 'update':
      visit(s.ttl);
      visit(s.timestamp);
      s.assignments.forEach((a) => visit(a.value));
      visitWhere(s.where);
      break;
    case 'delete':
      visit(s.timestamp);
      visitWhere(s.where);
      break;
    case 'select':
      visitWhere(s.where);
      visit(s.perPartitionLimit);
      visit(s.limit);
      break;
    default:
      break;
  }
  return max + 1;
}
