/**
 * The table-name rule (src/api/table-name.ts) with its last-valid-name shortcut: whatever name
 * passed before, every name is accepted exactly when it matches the rule.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TABLE_NAME_RE, validateTableName } from '../../src/api/table-name.js';

const accepts = (name: unknown): boolean => {
  try {
    return validateTableName(name) === name;
  } catch {
    return false;
  }
};

const nameArb = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'abcXYZ09_-'), minLength: 0, maxLength: 70 }),
  fc.string({ maxLength: 8 }),
  fc.constantFrom<unknown>(undefined, null, 7, '', 'users', 'users!', 'a'.repeat(64), 'a'.repeat(65)),
);

describe('validateTableName', () => {
  it('accepts a name exactly when it matches [A-Za-z0-9_-]{1,64}, whatever passed before', () => {
    fc.assert(
      fc.property(fc.array(nameArb, { minLength: 1, maxLength: 20 }), (names) => {
        for (const n of names) expect(accepts(n)).toBe(typeof n === 'string' && TABLE_NAME_RE.test(n));
      }),
    );
  });

  it('refuses invalid names right after a valid one, naming the field', () => {
    expect(validateTableName('users')).toBe('users');
    for (const bad of ['users!', '', undefined, null, 'a'.repeat(65)]) {
      expect(() => validateTableName(bad)).toThrow(expect.objectContaining({ code: 'bad_request', details: { field: 'table' } }) as Error);
    }
    expect(validateTableName('users')).toBe('users');
  });
});
