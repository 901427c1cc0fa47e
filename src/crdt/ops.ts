/**
 * Client operations: validation and parsing of the JSON bodies (and msgpack-decoded IPC values)
 * into typed operations. Shapes, exactly as issue 14 names them:
 *
 *   counter   {"increment": 5}  {"increment": -2}  {"decrement": 3}
 *   set       {"add": ["a","b"]}  {"remove": ["c"], "context": "..."}  (both lists in one op allowed)
 *   register  {"assign": "v"}
 *   flag      {"enable": true}  {"disable": true, "context": "..."}
 *   map       {"update": {"cart_map": {"items_set": {"add": ["book"]}}, "total_counter": {"increment": 12}},
 *              "remove": ["old_register"], "context": "..."}
 *
 * A nested map's operation is either `{"update": {...}, "remove": [...]}` or, as in the example
 * above, the shorthand `{field: op, ...}` meaning `{"update": {field: op, ...}}` (field names end in
 * `_type`, so they never collide with "update"/"remove"). `context` is accepted only at the top
 * level and only for set, flag and map operations (counters and registers have nothing to remove).
 *
 * Every error is a 400 whose message starts with the path of the bad field
 * (`update.cart_map.items_set.add[2]: ...`), or a 413 naming the crdt.* limit. Parsing allocates
 * nothing proportional to the input beyond the op itself, and checks crdt.maxOpEntries as it goes.
 *
 * Pure module: no I/O.
 */
import { parseContext } from './context.js';
import { badOp, DEFAULT_CRDT_LIMITS, limitExceeded, pathIndex, pathKey, utf8Bytes, type CrdtLimits } from './limits.js';
import { fieldType, type CounterOp, type CrdtOp, type CrdtType, type FlagOp, type MapOp, type ParsedOp, type RegisterOp, type SetOp } from './types.js';

type Obj = Record<string, unknown>;

function isObject(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !ArrayBuffer.isView(x) && !(x instanceof Map);
}

function expectObject(x: unknown, path: string, what: string): Obj {
  if (!isObject(x)) throw badOp(path, `${what} must be a JSON object`);
  return x;
}

function only(o: Obj, allowed: readonly string[], path: string, what: string): void {
  for (const k of Object.keys(o)) {
    if (o[k] === undefined) continue;
    if (k === 'context') throw badOp(pathKey(path, k), 'a context is accepted only at the top level of an operation');
    if (!allowed.includes(k)) throw badOp(pathKey(path, k), `unknown field; ${what} takes ${allowed.map((a) => `"${a}"`).join(' or ')}`);
  }
}

/** Counts elements and fields named across one operation against crdt.maxOpEntries. */
class Budget {
  private left: number;
  constructor(private readonly limits: CrdtLimits) {
    this.left = limits.maxOpEntries;
  }
  take(n: number, path: string): void {
    this.left -= n;
    if (this.left < 0) throw limitExceeded('maxOpEntries', this.limits, path, 'the number of elements and fields in the operation');
  }
}

function safeInteger(x: unknown, path: string): number {
  const v = typeof x === 'bigint' && x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw badOp(path, `must be an integer within ±(2^53 − 1), got ${JSON.stringify(typeof v === 'bigint' ? String(v) : v) ?? String(v)}`);
  return v === 0 ? 0 : v; // no -0
}

function parseCounter(o: Obj, path: string): CounterOp {
  only(o, ['increment', 'decrement'], path, 'a counter operation');
  const inc = o['increment'];
  const dec = o['decrement'];
  if ((inc === undefined) === (dec === undefined)) throw badOp(path, 'a counter operation takes exactly one of "increment" or "decrement"');
  if (inc !== undefined) return { type: 'counter', increment: safeInteger(inc, pathKey(path, 'increment')) };
  const d = safeInteger(dec, pathKey(path, 'decrement'));
  return { type: 'counter', increment: d === 0 ? 0 : -d };
}

/** A sorted, duplicate-free list of strings from `x`, each within `maxBytes`. */
function stringList(
  x: unknown,
  path: string,
  what: string,
  maxBytes: number,
  limit: 'maxElementBytes' | 'maxFieldNameBytes',
  limits: CrdtLimits,
  budget: Budget,
  check?: (s: string, path: string) => void,
): string[] {
  if (!Array.isArray(x)) throw badOp(path, `must be an array of ${what}s`);
  budget.take(x.length, path);
  const out: string[] = new Array<string>(x.length);
  for (let i = 0; i < x.length; i++) {
    const s: unknown = x[i];
    const p = pathIndex(path, i);
    if (typeof s !== 'string') throw badOp(p, `${what} must be a string${s instanceof Uint8Array ? ' (binary values are not supported)' : ''}`);
    if (utf8Bytes(s) > maxBytes) throw limitExceeded(limit, limits, p, `a ${utf8Bytes(s)}-byte ${what}`);
    check?.(s, p);
    out[i] = s;
  }
  out.sort();
  let w = 0;
  for (let i = 0; i < out.length; i++) if (i === 0 || out[i] !== out[w - 1]) out[w++] = out[i]!;
  out.length = w;
  return out;
}

function disjoint(a: readonly string[], b: readonly string[], path: string, what: string): void {
  const inB = new Set(b);
  for (const s of a) if (inB.has(s)) throw badOp(path, `${what} ${JSON.stringify(s)} is both updated/added and removed in one operation`);
}

function parseSet(o: Obj, path: string, limits: CrdtLimits, budget: Budget): SetOp {
  only(o, ['add', 'remove'], path, 'a set operation');
  const add = o['add'] === undefined ? [] : stringList(o['add'], pathKey(path, 'add'), 'element', limits.maxElementBytes, 'maxElementBytes', limits, budget);
  const remove = o['remove'] === undefined ? [] : stringList(o['remove'], pathKey(path, 'remove'), 'element', limits.maxElementBytes, 'maxElementBytes', limits, budget);
  if (add.length + remove.length === 0) throw badOp(path, 'a set operation needs elements to "add" or "remove"');
  disjoint(add, remove, path, 'element');
  return { type: 'set', add, remove };
}

function parseRegister(o: Obj, path: string, limits: CrdtLimits): RegisterOp {
  only(o, ['assign'], path, 'a register operation');
  const v = o['assign'];
  if (typeof v !== 'string') throw badOp(pathKey(path, 'assign'), v === undefined ? 'a register operation takes "assign"' : 'must be a string');
  if (utf8Bytes(v) > limits.maxRegisterBytes) throw limitExceeded('maxRegisterBytes', limits, pathKey(path, 'assign'), `a ${utf8Bytes(v)}-byte value`);
  return { type: 'register', assign: v };
}

function parseFlag(o: Obj, path: string): FlagOp {
  only(o, ['enable', 'disable'], path, 'a flag operation');
  const en = o['enable'];
  const dis = o['disable'];
  if ((en === undefined) === (dis === undefined)) throw badOp(path, 'a flag operation is {"enable": true} or {"disable": true}');
  const key = en !== undefined ? 'enable' : 'disable';
  if ((en ?? dis) !== true) throw badOp(pathKey(path, key), 'must be true');
  return { type: 'flag', enable: en !== undefined };
}

function checkFieldName(name: string, path: string): void {
  if (fieldType(name) === null) throw badOp(path, `field ${JSON.stringify(name)}: names are name_type with type counter, set, map, register or flag (e.g. "items_set")`);
}

function parseMap(o: Obj, path: string, limits: CrdtLimits, budget: Budget, depth: number): MapOp {
  if (depth > limits.maxMapDepth) throw limitExceeded('maxMapDepth', limits, path, `a map nested ${depth} levels deep`);
  if (o['context'] !== undefined) throw badOp(pathKey(path, 'context'), 'a context is accepted only at the top level of an operation');
  let updates: Obj = o;
  let updatesPath = path;
  let remove: string[] = [];
  if (o['update'] !== undefined || o['remove'] !== undefined) {
    only(o, ['update', 'remove'], path, 'a map operation');
    updates = o['update'] === undefined ? {} : expectObject(o['update'], pathKey(path, 'update'), '"update"');
    updatesPath = pathKey(path, 'update');
    if (o['remove'] !== undefined) {
      remove = stringList(o['remove'], pathKey(path, 'remove'), 'field name', limits.maxFieldNameBytes, 'maxFieldNameBytes', limits, budget, checkFieldName);
    }
  }
  const names = Object.keys(updates).filter((k) => updates[k] !== undefined).sort();
  budget.take(names.length, updatesPath);
  const update: [string, CrdtOp][] = [];
  for (const name of names) {
    const p = pathKey(updatesPath, name);
    checkFieldName(name, p);
    const type = fieldType(name)!;
    if (utf8Bytes(name) > limits.maxFieldNameBytes) throw limitExceeded('maxFieldNameBytes', limits, p, `a ${utf8Bytes(name)}-byte field name`);
    update.push([name, parseTyped(type, expectObject(updates[name], p, `the operation on ${name}`), p, limits, budget, depth + 1)]);
  }
  if (update.length + remove.length === 0) throw badOp(path, 'a map operation needs fields to "update" or "remove"');
  disjoint(names, remove, path, 'field');
  return { type: 'map', update, remove };
}

/** `depth`: the nesting level a map operation here would update (top level = 1). */
function parseTyped(type: CrdtType, o: Obj, path: string, limits: CrdtLimits, budget: Budget, depth: number): CrdtOp {
  switch (type) {
    case 'counter':
      return parseCounter(o, path);
    case 'set':
      return parseSet(o, path, limits, budget);
    case 'register':
      return parseRegister(o, path, limits);
    case 'flag':
      return parseFlag(o, path);
    case 'map':
      return parseMap(o, path, limits, budget, depth);
  }
}

/**
 * Validates a client's operation on an object of type `type` (the table's type) and returns it
 * typed, with its decoded context. Throws RingkvError: bad_request (400) naming the path, or
 * too_large (413) naming the crdt.* limit.
 */
export function parseOp(type: CrdtType, input: unknown, limits: CrdtLimits = DEFAULT_CRDT_LIMITS): ParsedOp {
  const o = expectObject(input, '', `a ${type} operation`);
  let context;
  if (o['context'] !== undefined) {
    if (type === 'counter' || type === 'register') throw badOp('context', `${type} operations take no context`);
    context = parseContext(o['context'], limits, 'context');
  }
  const rest: Obj = {};
  for (const k of Object.keys(o)) if (k !== 'context') rest[k] = o[k];
  return { op: parseTyped(type, rest, '', limits, new Budget(limits), 1), context };
}
