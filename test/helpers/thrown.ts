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

/** The error `p` rejects with, checked to be an instance of `cls` (fails the test when it resolves or rejects with something else). */
export async function rejected<E extends Error>(p: Promise<unknown>, cls: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (e) {
    if (e instanceof cls) return e;
    throw e;
  }
  throw new Error('expected the promise to reject');
}
