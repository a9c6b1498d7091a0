/**
 * viewToRequest: every varsToRequest test of request-vars.test.ts run again with the vars
 * encoded, viewed and read through viewToRequest (the module is mocked so that its
 * `varsToRequest` is that path), plus the two held to each other on the fixtures.
 */
import { vi } from 'vitest';

vi.mock('../src/index.ts', async (importOriginal) => {
  const codec = await importOriginal<typeof import('../src/index.ts')>();
  return {
    ...codec,
    varsToRequest: (
      vars: ReadonlyArray<readonly [string, string]>,
      options: import('../src/index.ts').VarsToRequestOptions = {},
    ) => {
      const encoding = options.encoding === undefined ? {} : { encoding: options.encoding };
      return codec.viewToRequest(
        codec.decodeVarsView(codec.encodeVars(vars, encoding), encoding),
        options,
      );
    },
  };
});

await import('./request-vars.test.ts');
