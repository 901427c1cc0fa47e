/** The error `f` throws, checked to be an instance of `cls` (fails the test when nothing or something else is thrown). */
export function thrown<E extends Error>(f: () => unknown, cls: abstract new (...args: never[]) => E): E {
  try {
    f();
  } catch (e) {
    if (e instanceof cls) return e;
    throw e;
  }
  throw new Error('expected an error, none was thrown');
}
